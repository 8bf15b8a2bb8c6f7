package runcreplay

import (
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// console is a console socket (runc --console-socket): runc connects and
// sends the master side of the container's pseudo-terminal as SCM_RIGHTS.
// The masters stay open until close: closing one hangs up the terminal,
// which ends the container's shell.
type console struct {
	ln      *net.UnixListener
	got     chan error
	mu      sync.Mutex
	masters []*os.File
}

func listenConsole(path string) (*console, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	c := &console{ln: ln, got: make(chan error, 8)}
	go c.accept()
	return c, nil
}

func (c *console) accept() {
	for {
		conn, err := c.ln.AcceptUnix()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			c.got <- c.receive(conn)
		}()
	}
}

// receive reads one message and keeps the terminal master it carries.
func (c *console) receive(conn *net.UnixConn) error {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return fmt.Errorf("console socket: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return fmt.Errorf("console socket: %d control messages, %v", len(msgs), err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return fmt.Errorf("console socket: %d file descriptors, %v", len(fds), err)
	}
	master := os.NewFile(uintptr(fds[0]), "pty-master")
	c.mu.Lock()
	c.masters = append(c.masters, master)
	c.mu.Unlock()
	// Drain what the container writes to its terminal.
	go func() {
		b := make([]byte, 4096)
		for {
			if _, err := master.Read(b); err != nil {
				return
			}
		}
	}()
	return nil
}

// received waits for the next terminal master runc sends.
func (c *console) received(timeout time.Duration) error {
	select {
	case err := <-c.got:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("runc sent no terminal to the console socket in %s", timeout)
	}
}

func (c *console) close() {
	c.ln.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.masters {
		m.Close()
	}
	c.masters = nil
}
