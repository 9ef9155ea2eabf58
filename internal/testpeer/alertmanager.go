// Package testpeer starts the real programs remediator talks to, for tests: each peer
// runs as a child process on loopback, lives as long as the test that asked for it, and
// shows its own log only when that test fails. A missing peer fails the test when
// CI=true and skips it otherwise, saying how to install it. The package holds test
// support only; nothing outside tests may import it.
package testpeer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// AlertmanagerBinEnv names the environment variable that points at the Alertmanager
// binary to run. Without it, alertmanager is looked up on PATH, then in Go's bin folder.
const AlertmanagerBinEnv = "REMEDIATOR_ALERTMANAGER_BIN"

// AlertmanagerVersion is the Alertmanager release the tests are written against.
const AlertmanagerVersion = "0.31.1"

const (
	readyTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
	logTailLines = 60
)

// client is shared by the helpers; every call is also bounded by its test's context.
var client = &http.Client{Timeout: 10 * time.Second}

// AM is a running Alertmanager.
type AM struct {
	url string
}

// PostableAlert is an alert as Alertmanager's v2 API accepts it. A zero EndsAt lets
// Alertmanager apply its resolve_timeout; an EndsAt in the past resolves the alert.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Alert is an alert as Alertmanager's v2 API lists it, with the fields tests look at.
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	UpdatedAt    time.Time         `json:"updatedAt"`
	Fingerprint  string            `json:"fingerprint"`
	GeneratorURL string            `json:"generatorURL"`
	Status       AlertStatus       `json:"status"`
	Receivers    []Receiver        `json:"receivers"`
}

// AlertStatus says whether an alert is active, suppressed or unprocessed, and why.
type AlertStatus struct {
	State       string   `json:"state"`
	SilencedBy  []string `json:"silencedBy"`
	InhibitedBy []string `json:"inhibitedBy"`
}

// Receiver names a receiver an alert is routed to.
type Receiver struct {
	Name string `json:"name"`
}

// Silence is a silence as Alertmanager's v2 API lists it.
type Silence struct {
	ID        string        `json:"id"`
	Status    SilenceStatus `json:"status"`
	Matchers  []Matcher     `json:"matchers"`
	StartsAt  time.Time     `json:"startsAt"`
	EndsAt    time.Time     `json:"endsAt"`
	UpdatedAt time.Time     `json:"updatedAt"`
	CreatedBy string        `json:"createdBy"`
	Comment   string        `json:"comment"`
}

// SilenceStatus is a silence's state: pending, active or expired.
type SilenceStatus struct {
	State string `json:"state"`
}

// Matcher is one label matcher of a silence. IsEqual is absent from older Alertmanagers,
// which only knew equality.
type Matcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual *bool  `json:"isEqual,omitempty"`
}

// Alertmanager starts a real Alertmanager with cfgYAML as its configuration, on a free
// loopback port and without clustering, waits until it is ready, and stops it when the
// test ends.
func Alertmanager(t testing.TB, cfgYAML string) *AM {
	t.Helper()
	bin := alertmanagerBinary(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgFile, []byte(cfgYAML), 0o600); err != nil {
		t.Fatalf("writing Alertmanager configuration: %v", err)
	}

	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	p := startProcess(t, "alertmanager", bin, filepath.Join(dir, "alertmanager.log"),
		"--config.file="+cfgFile,
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--storage.path="+filepath.Join(dir, "data"),
		"--log.level=debug",
	)
	am := &AM{url: "http://" + addr}
	p.waitReady(t, am.url+"/-/ready")
	return am
}

// alertmanagerBinary finds the binary, or ends the test: failed in CI, skipped elsewhere.
func alertmanagerBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv(AlertmanagerBinEnv); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s=%s: %v", AlertmanagerBinEnv, bin, err)
		}
		return bin
	}
	if bin, err := exec.LookPath("alertmanager"); err == nil {
		return bin
	}
	for _, dir := range goBinDirs() {
		bin := filepath.Join(dir, "alertmanager")
		if st, err := os.Stat(bin); err == nil && !st.IsDir() {
			return bin
		}
	}

	hint := "Alertmanager binary not found (looked at $" + AlertmanagerBinEnv +
		", PATH and Go's bin folder); run scripts/test.sh, or install it with " +
		"go install github.com/prometheus/alertmanager/cmd/alertmanager@v" + AlertmanagerVersion
	if os.Getenv("CI") == "true" {
		t.Fatal(hint)
	}
	t.Skip(hint)
	return ""
}

// goBinDirs lists where go install puts binaries: GOBIN, or bin under each GOPATH entry.
func goBinDirs() []string {
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		// no go command: nothing to look at
		return nil
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var dirs []string
	if len(lines) > 0 && strings.TrimSpace(lines[0]) != "" {
		dirs = append(dirs, strings.TrimSpace(lines[0]))
	}
	if len(lines) > 1 {
		for _, p := range filepath.SplitList(strings.TrimSpace(lines[1])) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	return dirs
}

// URL is Alertmanager's base URL, such as http://127.0.0.1:40123.
func (am *AM) URL() string { return am.url }

// PostAlerts sends alerts to Alertmanager as a client such as Prometheus does.
func (am *AM) PostAlerts(t testing.TB, alerts []PostableAlert) {
	t.Helper()
	body, err := json.Marshal(alerts)
	if err != nil {
		t.Fatalf("encoding alerts: %v", err)
	}
	resp := do(t, http.MethodPost, am.url+"/api/v2/alerts", body)
	if resp.status != http.StatusOK {
		t.Fatalf("posting alerts to Alertmanager: %d %s", resp.status, resp.body)
	}
}

// Alerts lists the alerts Alertmanager holds, silenced and inhibited ones included.
func (am *AM) Alerts(t testing.TB) []Alert {
	t.Helper()
	var alerts []Alert
	am.get(t, "/api/v2/alerts", &alerts)
	return alerts
}

// Silences lists Alertmanager's silences, expired ones included.
func (am *AM) Silences(t testing.TB) []Silence {
	t.Helper()
	var silences []Silence
	am.get(t, "/api/v2/silences", &silences)
	return silences
}

func (am *AM) get(t testing.TB, path string, v any) {
	t.Helper()
	resp := do(t, http.MethodGet, am.url+path, nil)
	if resp.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.status, resp.body)
	}
	if err := json.Unmarshal(resp.body, v); err != nil {
		t.Fatalf("decoding GET %s: %v", path, err)
	}
}

type response struct {
	status int
	body   []byte
}

// do makes one request bounded by the test's context and reads the whole answer.
func do(t testing.TB, method, url string, body []byte) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatalf("building %s %s: %v", method, url, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()

	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading answer to %s %s: %v", method, url, err)
	}
	return response{status: resp.StatusCode, body: data}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatalf("releasing port %d: %v", port, err)
	}
	return port
}

// WaitFor polls cond until it holds, failing the test with msg once timeout has passed.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// process is a peer running as a child process.
type process struct {
	name    string
	logFile string
	exited  chan struct{} // closed once the process has exited
	err     error         // why it exited; read only after exited is closed
}

// startProcess runs bin with args, its output going to logFile. When the test ends it is
// sent SIGTERM, killed if still running stopTimeout later, and its log tail is shown if
// the test failed.
func startProcess(t testing.TB, name, bin, logFile string, args ...string) *process {
	t.Helper()
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatalf("creating %s log: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopTimeout
	if err := cmd.Start(); err != nil {
		cancel()
		_ = out.Close()
		t.Fatalf("starting %s: %v", name, err)
	}

	p := &process{name: name, logFile: logFile, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.exited
		_ = out.Close()
		if t.Failed() {
			t.Logf("last lines of the %s log:\n%s", name, tail(logFile, logTailLines))
		}
	})
	return p
}

// waitReady polls url until it answers 200, failing the test if the process exits or
// readyTimeout passes first.
func (p *process) waitReady(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		if ready(t.Context(), url) {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it was ready: %v", p.name, p.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s after %s", p.name, url, readyTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ready(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		// not listening yet
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// tail returns the last n lines of file, or why it could not be read.
func tail(file string, n int) string {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", file, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
