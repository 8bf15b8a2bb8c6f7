package ansible

import (
	"os/exec"
	"testing"

	"github.com/nokmem/nokmem/internal/testenv"
)

// The playbooks and the role pass ansible-lint (production profile, with
// .ansible-lint) and ansible-playbook's syntax check.
func TestLint(t *testing.T) {
	testenv.RequireCommand(t, "ansible-lint")
	testenv.RequireCommand(t, "ansible-playbook")
	cmd := exec.Command("ansible-lint", "--nocolor", "--offline", "-p", "site.yml", "rollback.yml", "roles/nokmem_node")
	cmd.Env = append(cmd.Environ(), "ANSIBLE_HOME="+t.TempDir(), "ANSIBLE_LOCAL_TEMP="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("ansible-lint: %v\n%s", err, out)
	}
	for _, pb := range [][]string{{"site.yml"}, {"rollback.yml", "-e", "nokmem_target=node-a02.example.com"}} {
		cmd := exec.Command("ansible-playbook", append([]string{"--syntax-check", "-i", "inventory.example.ini"}, pb...)...)
		cmd.Env = append(cmd.Environ(), "ANSIBLE_CONFIG=ansible.cfg", "ANSIBLE_HOME="+t.TempDir(), "ANSIBLE_LOCAL_TEMP="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("ansible-playbook --syntax-check %v: %v\n%s", pb, err, out)
		}
	}
}
