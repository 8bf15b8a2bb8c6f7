package publish

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The killed-publish test re-executes this test binary as a child that
// publishes in a loop until it is killed (see TestMain).
const (
	loopDestEnv  = "NOKMEM_PUBLISH_LOOP_DEST"
	loopSrcEnv   = "NOKMEM_PUBLISH_LOOP_SRC"
	loopFirstEnv = "NOKMEM_PUBLISH_LOOP_FIRST"
)

func TestMain(m *testing.M) {
	if dest := os.Getenv(loopDestEnv); dest != "" {
		first, _ := strconv.Atoi(os.Getenv(loopFirstEnv))
		publishLoop(dest, os.Getenv(loopSrcEnv), first)
		return // not reached: publishLoop runs until killed
	}
	os.Exit(m.Run())
}

// publishLoop publishes the generations under src (gen-0, gen-1, ...) into
// dest, round and round from generation first, and says "publishing" on
// stdout once it has started.
func publishLoop(dest, src string, first int) {
	gens, err := filepath.Glob(filepath.Join(src, "gen-*"))
	if err != nil || len(gens) == 0 {
		fmt.Fprintf(os.Stderr, "publish loop: no generations in %s (%v)\n", src, err)
		os.Exit(2)
	}
	fmt.Println("publishing")
	for i := first; ; i++ {
		n := i % len(gens)
		if _, err := Publish(dest, genFiles(filepath.Join(src, fmt.Sprintf("gen-%d", n))), genStamp(n)); err != nil {
			fmt.Fprintf(os.Stderr, "publish loop: %v\n", err)
			os.Exit(2)
		}
	}
}

// genFiles are the two artifacts of one generation, so that a folder holding
// one artifact of each generation is a visible mix.
func genFiles(dir string) []string {
	return []string{filepath.Join(dir, "kubelet"), filepath.Join(dir, "runc")}
}

func genStamp(n int) *Stamp { return stamp(fmt.Sprintf("lock generation %d", n)) }

// generations writes the artifacts of generations 0..n-1 under src/gen-<n>
// and returns the folder each one publishes to when published alone: the
// exact bytes a reader may see in dest.
func generations(t *testing.T, src string, n int) []map[string]string {
	t.Helper()
	golden := make([]map[string]string, n)
	for g := range n {
		dir := filepath.Join(src, fmt.Sprintf("gen-%d", g))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"kubelet", "runc"} {
			body := fmt.Sprintf("%s generation %d\n%s", name, g, strings.Repeat("x", 4096*g%65536))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		ref := filepath.Join(t.TempDir(), "ref")
		if _, err := Publish(ref, genFiles(dir), genStamp(g)); err != nil {
			t.Fatal(err)
		}
		golden[g] = snapshot(t, ref)
	}
	return golden
}

// errNotInPlace marks a reading that raced with a swap: the folder the
// reader opened was swapped out (and is being removed) while it read, so the
// reading says nothing about what dest held.
var errNotInPlace = errors.New("folder left dest while it was read")

// observe reads dest the way a consumer that opens the folder once does:
// resolve dest, then list and read every file relative to that open folder.
// It returns the generation the folder holds, or an error saying what is
// wrong with it. A wrong reading counts only if the folder the reader opened
// is still the one at dest afterwards (same inode, not removed); otherwise
// it is errNotInPlace.
func observe(dest string, golden []map[string]string) (int, error) {
	fd, err := unix.Open(dest, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", dest, err)
	}
	defer unix.Close(fd)
	got, readErr := readAt(fd)
	gen := -1
	if readErr == nil {
		var body string
		body, readErr = got["kubelet"], errors.New("no generation matches")
		for g, want := range golden {
			if strings.HasPrefix(body, fmt.Sprintf("kubelet generation %d\n", g)) {
				gen, readErr = g, diff(want, got)
				break
			}
		}
	}
	if readErr == nil {
		return gen, nil
	}
	var held, now unix.Stat_t
	if err := unix.Fstat(fd, &held); err != nil {
		return -1, err
	}
	if err := unix.Stat(dest, &now); err != nil || held.Ino != now.Ino || held.Dev != now.Dev || held.Nlink == 0 {
		return -1, errNotInPlace
	}
	return -1, fmt.Errorf("%s (generation %d): %w", dest, gen, readErr)
}

// readAt reads every file of the open folder fd by name.
func readAt(fd int) (map[string]string, error) {
	dup, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	dir := os.NewFile(uintptr(dup), "dest")
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, n := range names {
		nfd, err := unix.Openat(fd, n, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", n, err)
		}
		f := os.NewFile(uintptr(nfd), n)
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", n, err)
		}
		m[n] = string(b)
	}
	return m, nil
}

// diff says how got differs from want: a missing, extra or changed file.
func diff(want, got map[string]string) error {
	var errs []error
	for _, n := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[n]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s missing", n))
		case g != want[n]:
			errs = append(errs, fmt.Errorf("%s is from another generation or half written", n))
		}
	}
	for _, n := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[n]; !ok {
			errs = append(errs, fmt.Errorf("unexpected %s", n))
		}
	}
	return errors.Join(errs...)
}

// watcher reads dest in a loop until stopped and keeps what it saw.
type watcher struct {
	stop     chan struct{}
	done     sync.WaitGroup
	readings int
	raced    int
	gens     map[int]bool
	bad      []error
}

func watch(dest string, golden []map[string]string) *watcher {
	w := &watcher{stop: make(chan struct{}), gens: map[int]bool{}}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			gen, err := observe(dest, golden)
			switch {
			case errors.Is(err, errNotInPlace):
				w.raced++
			case err != nil:
				if len(w.bad) < 5 {
					w.bad = append(w.bad, err)
				}
			default:
				w.readings++
				w.gens[gen] = true
			}
		}
	}()
	return w
}

// finish stops the reader and fails the test if it ever saw a folder that is
// missing, incomplete or a mix of generations, or if it saw too little for
// that to mean anything.
func (w *watcher) finish(t *testing.T, minGens int) {
	t.Helper()
	close(w.stop)
	w.done.Wait()
	t.Logf("reader: %d complete readings of %d generations, %d raced with a swap", w.readings, len(w.gens), w.raced)
	for _, err := range w.bad {
		t.Errorf("reader saw a broken output folder: %v", err)
	}
	if len(w.gens) < minGens {
		t.Errorf("reader saw %d generations, want at least %d: it did not watch the swaps", len(w.gens), minGens)
	}
}

// TestReadersSeeOldOrNewFolder: while publishes replace the output folder
// again and again, a reader that opens the folder and reads every file sees
// one complete generation each time, never a missing folder, a missing file
// or files of two generations. Publishing by RemoveAll(dest) then Rename
// fails this test.
func TestReadersSeeOldOrNewFolder(t *testing.T) {
	const n = 150
	src := t.TempDir()
	golden := generations(t, src, n)
	dest := filepath.Join(t.TempDir(), "v1.12.4")
	if _, err := Publish(dest, genFiles(filepath.Join(src, "gen-0")), genStamp(0)); err != nil {
		t.Fatal(err)
	}
	w := watch(dest, golden)
	for g := 1; g < n; g++ {
		if _, err := Publish(dest, genFiles(filepath.Join(src, fmt.Sprintf("gen-%d", g))), genStamp(g)); err != nil {
			t.Fatalf("publish generation %d: %v", g, err)
		}
		time.Sleep(200 * time.Microsecond) // let the reader finish a reading of this generation
	}
	w.finish(t, n/10)
	if gen, err := observe(dest, golden); err != nil || gen != n-1 {
		t.Errorf("after the last publish: generation %d, %v; want %d", gen, err, n-1)
	}
}

// TestKilledPublishLeavesAWholeFolder: a child process publishes in a loop
// and is SIGKILLed at a random moment, again and again, while a reader
// watches dest. Every reading, and the folder after each kill, is one
// complete generation. The staging folders the kills leave behind are
// hidden siblings of dest, and the next publish works and removes them.
func TestKilledPublishLeavesAWholeFolder(t *testing.T) {
	const n, kills = 8, 25
	src := t.TempDir()
	golden := generations(t, src, n)
	parent := t.TempDir()
	dest := filepath.Join(parent, "v1.12.4")
	if _, err := Publish(dest, genFiles(filepath.Join(src, "gen-0")), genStamp(0)); err != nil {
		t.Fatal(err)
	}
	w := watch(dest, golden)
	midPublish := 0 // kills that left a staging folder: they landed inside a publish
	for i := range kills {
		killMidPublish(t, dest, src, i+1, time.Duration(rand.IntN(20_000))*time.Microsecond)
		gen, err := observe(dest, golden)
		if err != nil {
			t.Fatalf("after kill %d: %v", i, err)
		}
		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		staging := 0
		for _, e := range entries {
			switch {
			case e.Name() == filepath.Base(dest):
			case strings.HasPrefix(e.Name(), stagingPrefix(dest)):
				staging++
			default:
				t.Errorf("a killed publish left %s beside the output folder", e.Name())
			}
		}
		if staging > 0 {
			midPublish++
		}
		t.Logf("kill %d: folder holds generation %d; %d staging folders beside it", i, gen, staging)
	}
	w.finish(t, 2)
	if midPublish == 0 {
		t.Errorf("no kill landed inside a publish (no staging folder left behind): the test proved nothing")
	}
	t.Logf("%d of %d kills landed inside a publish", midPublish, kills)
	if _, err := Publish(dest, genFiles(filepath.Join(src, "gen-1")), genStamp(1)); err != nil {
		t.Fatalf("publish after killed runs: %v", err)
	}
	if gen, err := observe(dest, golden); err != nil || gen != 1 {
		t.Errorf("after a publish that follows killed runs: generation %d, %v; want 1", gen, err)
	}
	if entries, err := os.ReadDir(parent); err != nil || len(entries) != 1 {
		t.Errorf("after the next publish the killed runs' staging folders are still there: %v, %v", entries, err)
	}
}

// TestStaleStagingOfALiveRunIsKept: a staging folder whose process still
// runs (here: this test's own) may be a publish under way and is left alone.
func TestStaleStagingOfALiveRunIsKept(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "v1.12.4")
	live := filepath.Join(filepath.Dir(dest), fmt.Sprintf(".v1.12.4.staging-%d-123", os.Getpid()))
	other := filepath.Join(filepath.Dir(dest), ".v1.12.4-other")
	for _, d := range []string{live, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Publish(dest, []string{artifact(t, "kubelet", "x")}, stamp("x")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{live, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed: %v", d, err)
		}
	}
}

// killMidPublish starts the publish loop in a child (beginning with
// generation first, so that successive children publish different ones),
// lets it run for d after it said it started, then SIGKILLs it and reaps it.
func killMidPublish(t *testing.T, dest, src string, first int, d time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), loopDestEnv+"="+dest, loopSrcEnv+"="+src, loopFirstEnv+"="+strconv.Itoa(first))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "publishing\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("publish loop child did not start: %q, %v", line, err)
	}
	time.Sleep(d)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("publish loop child ended with %v, want killed by SIGKILL (did a publish fail?)", err)
	}
}
