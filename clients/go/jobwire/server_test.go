package jobwire_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// server is a real jobwired on a Unix socket in a temp directory; the
// binary is $JOBWIRED, else the ci or release build of this checkout.
type server struct {
	t    *testing.T
	dir  string
	addr string
	args []string
	cmd  *exec.Cmd
	log  *os.File
}

func jobwiredPath(t *testing.T) string {
	if p := os.Getenv("JOBWIRED"); p != "" {
		return p
	}
	for _, preset := range []string{"ci", "release"} {
		p, _ := filepath.Abs(filepath.Join("..", "..", "..", "build", preset, "bin", "jobwired"))
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("no jobwired: build it or set JOBWIRED")
	return ""
}

func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{t: t, dir: dir, addr: "unix:" + filepath.Join(dir, "j.sock"),
		args: append([]string{"--shutdown-grace=2s", "--lease-ttl=3s"}, extra...)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	log, err := os.OpenFile(filepath.Join(s.dir, "jobwired.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	s.log = log
	mark, _ := log.Seek(0, 2)
	args := append([]string{"--listen", s.addr, "--db", filepath.Join(s.dir, "j.db")}, s.args...)
	s.cmd = exec.Command(jobwiredPath(s.t), args...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		text, _ := os.ReadFile(log.Name())
		if int64(len(text)) > mark && strings.Contains(string(text[mark:]), "listening on") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	text, _ := os.ReadFile(log.Name())
	s.t.Fatalf("jobwired did not start:\n%s", text)
}

func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
	s.cmd = nil
	s.log.Close()
}
