package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/testpeer"
)

// TestPauseSurvivesARestart pauses a running server through the CLI, restarts it, and
// finds the pause still in force until it is lifted.
func TestPauseSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	storage := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "remediator.yml")
	writeFile(t, cfg, "webhook:\n  auth: {bearer_token_file: token}\n")
	writeFile(t, filepath.Join(dir, "token"), "pause-token\n")
	tokenFile := filepath.Join(dir, "token")

	url, stop := serveFor(t, cfg, storage)
	if code, _, errOut := runCommand(t, "pause", "--web.url="+url, "--auth.token-file="+tokenFile,
		"--policy=letsencrypt"); code != 0 {
		t.Fatalf("pause exited %d: %s", code, errOut)
	}
	if code, _, _ := runCommand(t, "pause", "--web.url="+url, "--auth.token-file="+filepath.Join(dir, "cfg")); code != 1 {
		t.Errorf("pause without a readable token exited %d, want 1", code)
	}

	if code, _, errOut := runCommand(t, "healthcheck", "--web.url="+url); code != 0 {
		t.Errorf("healthcheck of a ready server exited %d: %s", code, errOut)
	}
	stop()
	if code, _, _ := runCommand(t, "healthcheck", "--web.url="+url, "--alive"); code != 1 {
		t.Errorf("healthcheck of a stopped server exited %d, want 1", code)
	}
	url, _ = serveFor(t, cfg, storage)
	code, out, errOut := runCommand(t, "paused", "--web.url="+url, "--auth.token-file="+tokenFile)
	if code != 0 {
		t.Fatalf("paused exited %d: %s", code, errOut)
	}
	var got struct{ Paused map[string]string }
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Paused["letsencrypt"]; !ok || len(got.Paused) != 1 {
		t.Fatalf("pauses after a restart: %v", got.Paused)
	}
	if code, _, _ := runCommand(t, "resume", "--web.url="+url, "--auth.token-file="+tokenFile,
		"--policy=letsencrypt"); code != 0 {
		t.Fatal("resume failed")
	}
	_, out, _ = runCommand(t, "paused", "--web.url="+url, "--auth.token-file="+tokenFile)
	if strings.Contains(out, "letsencrypt") {
		t.Errorf("pause still listed after resume: %s", out)
	}
}

// serveFor runs serve in-process and returns its URL and a function that stops it; it
// stops at the end of the test at the latest.
func serveFor(t *testing.T, cfg, storage string) (string, func()) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config.file=" + cfg, "--web.listen-address=" + addr,
			"--storage.path=" + storage}, &syncBuffer{}, &syncBuffer{})
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("serve did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	url := "http://" + addr
	token := filepath.Join(filepath.Dir(cfg), "token")
	testpeer.WaitFor(t, 15*time.Second, func() bool {
		code, _, _ := runCommand(t, "paused", "--web.url="+url, "--auth.token-file="+token)
		return code == 0
	}, fmt.Sprintf("serve on %s", addr))
	return url, stop
}
