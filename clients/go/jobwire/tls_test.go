package jobwire_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/jobwire/jobwire/clients/go/gen/jobwire/v1"
	"github.com/jobwire/jobwire/clients/go/jobwire"
)

// makeCertificates writes ca, server (for 127.0.0.1) and client
// certificates and keys into dir with openssl.
func makeCertificates(t *testing.T, dir string) {
	t.Helper()
	run := func(args ...string) {
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"}
	run(append(append([]string{"req", "-x509"}, ec...), "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=ca")...)
	for _, c := range []struct{ name, san string }{{"server", "IP:127.0.0.1"}, {"client", "DNS:client"}} {
		run(append(append([]string{"req"}, ec...), "-keyout", c.name+".key", "-out", c.name+".csr", "-subj", "/CN="+c.name)...)
		if err := os.WriteFile(filepath.Join(dir, c.name+".ext"), []byte("subjectAltName="+c.san+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		run("x509", "-req", "-in", c.name+".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
			"-out", c.name+".pem", "-days", "2", "-extfile", c.name+".ext")
	}
}

func TestTLSWithAClientCertificate(t *testing.T) {
	certs := t.TempDir()
	makeCertificates(t, certs)
	file := func(name string) string { return filepath.Join(certs, name) }
	s := startServer(t, "--listen", "127.0.0.1:0", "--tls-cert", file("server.pem"),
		"--tls-key", file("server.key"), "--tls-client-ca", file("ca.pem"))
	text, err := os.ReadFile(filepath.Join(s.dir, "jobwired.log"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(text), "listening on 127.0.0.1:")
	if !ok {
		t.Fatalf("no TCP address in the log:\n%s", text)
	}
	addr := "127.0.0.1:" + strings.Fields(rest)[0]
	c, err := jobwire.Dial(addr, jobwire.WithTLS(file("ca.pem"), file("client.pem"), file("client.key")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.SubmitJob(testCtx(t), &pb.Job{Kind: "k"}, ""); err != nil {
		t.Fatalf("with the client certificate: %v", err)
	}
	// Without it the handshake fails.
	anonymous, err := jobwire.Dial(addr, jobwire.WithTLS(file("ca.pem"), "", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer anonymous.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := anonymous.SubmitJob(ctx, &pb.Job{Kind: "k"}, ""); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	if _, err := jobwire.Dial(addr, jobwire.WithTLS(file("missing.pem"), "", "")); err == nil {
		t.Fatal("a missing CA file was accepted")
	}
}
