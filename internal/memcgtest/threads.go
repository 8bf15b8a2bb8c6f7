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

// Threaded is a process with threads: a started copy of the threads helper
// on the kernel, a task with threads on the simulator.
type Threaded struct {
	*Proc
	in  io.WriteCloser // nil on the simulator
	out *bufio.Reader
}

// StartThreaded starts a process with at least threads extra threads in
// cgroup rel. On the kernel it builds the threads helper (with the go
// command, cached by the build cache), starts it, waits until its threads
// are up and moves it into rel.
func (n *Node) StartThreaded(rel string, threads int) *Threaded {
	n.t.Helper()
	if n.Sim != nil {
		p := n.simTask(rel, 0)
		for range threads {
			if _, err := n.Sim.AddThread(p.Pid); err != nil {
				n.t.Fatal(err)
			}
		}
		return &Threaded{Proc: p}
	}
	goCmd := testenv.RequireCommand(n.t, "go")
	dir := n.t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(threadsSrc), 0o644); err != nil {
		n.t.Fatal(err)
	}
	bin := filepath.Join(dir, "threads")
	build := exec.Command(goCmd, "build", "-o", bin, src)
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		n.t.Fatalf("build threads helper: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, strconv.Itoa(threads))
	in, err := cmd.StdinPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	th := &Threaded{Proc: n.start(cmd), in: in, out: bufio.NewReader(stdout)}
	th.expect("ready")
	n.moveIn(rel, th.Proc)
	return th
}

// Alloc makes the process allocate and touch mib MiB, charged to the
// cgroup it is in now. The simulator charges memory at task creation only,
// so there the task is replaced by one with the usage, in the same cgroup,
// and Pid changes (its threads are not carried over).
func (th *Threaded) Alloc(mib int) {
	t := th.n.t
	t.Helper()
	if sim := th.n.Sim; sim != nil {
		cg, err := sim.TaskCgroup(th.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.Exit(th.Pid); err != nil {
			t.Fatal(err)
		}
		if th.Pid, err = sim.AddTask(cg, int64(mib)<<20); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := fmt.Fprintln(th.in, mib); err != nil {
		t.Fatalf("threads helper pid %d: %v", th.Pid, err)
	}
	th.expect("ok")
}

func (th *Threaded) expect(want string) {
	t := th.n.t
	t.Helper()
	line, err := th.out.ReadString('\n')
	if err != nil || line != want+"\n" {
		t.Fatalf("threads helper pid %d: got %q, %v; want %q", th.Pid, line, err, want)
	}
}
