package memcgtest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/nokmem/nokmem/internal/testenv"
)

// threadsSrc is a tiny program with several OS threads: it parks n
// goroutines on their own threads, prints "ready", then for every number
// of MiB it reads on stdin allocates and touches that much memory (charged
// to its cgroup at that moment) and prints "ok".
const threadsSrc = `package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

var keep [][]byte

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	up := make(chan bool)
	for range n {
		go func() {
			runtime.LockOSThread()
			up <- true
			for {
				time.Sleep(time.Hour)
			}
		}()
	}
	for range n {
		<-up
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		mb, _ := strconv.Atoi(sc.Text())
		b := make([]byte, mb<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
		fmt.Println("ok")
	}
	for {
		time.Sleep(time.Hour)
	}
}
`

// Threaded is a started copy of the threads helper.
type Threaded struct {
	*Proc
	in  io.WriteCloser
	out *bufio.Reader
}

// StartThreaded builds (with the go command, cached by the build cache) and
// starts a process with at least threads extra OS threads, waits until they
// are up and moves it into cgroup rel.
func (tr *Tree) StartThreaded(rel string, threads int) *Threaded {
	tr.t.Helper()
	goCmd := testenv.RequireCommand(tr.t, "go")
	dir := tr.t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(threadsSrc), 0o644); err != nil {
		tr.t.Fatal(err)
	}
	bin := filepath.Join(dir, "threads")
	build := exec.Command(goCmd, "build", "-o", bin, src)
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		tr.t.Fatalf("build threads helper: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, strconv.Itoa(threads))
	in, err := cmd.StdinPipe()
	if err != nil {
		tr.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tr.t.Fatal(err)
	}
	th := &Threaded{Proc: tr.start(cmd), in: in, out: bufio.NewReader(stdout)}
	th.expect(tr, "ready")
	tr.moveIn(rel, th.Proc)
	return th
}

// Alloc makes the process allocate and touch mib MiB, charged to the
// cgroup it is in now.
func (th *Threaded) Alloc(tr *Tree, mib int) {
	tr.t.Helper()
	if _, err := fmt.Fprintln(th.in, mib); err != nil {
		tr.t.Fatalf("threads helper pid %d: %v", th.Pid, err)
	}
	th.expect(tr, "ok")
}

func (th *Threaded) expect(tr *Tree, want string) {
	tr.t.Helper()
	line, err := th.out.ReadString('\n')
	if err != nil || line != want+"\n" {
		tr.t.Fatalf("threads helper pid %d: got %q, %v; want %q", th.Pid, line, err, want)
	}
}
