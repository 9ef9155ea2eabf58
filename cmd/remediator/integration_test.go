package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/remediator/remediator/internal/testpeer"
)

// Each scenario waits at most this long for what it expects from Alertmanager.
const scenarioTimeout = 30 * time.Second

// Metric names and label values the scenarios read from the receiver's /metrics.
const (
	metricAlerts        = "remediator_alerts_received_total"
	metricNotifications = "remediator_notifications_total"
)

// repeatInterval is the repeat_interval of the Alertmanager route under test.
const repeatInterval = 3 * time.Second

// certAlert is the alert the scenarios send: what blackbox_exporter's rule raises for the
// outbound SMTP relay's certificate.
func certAlert(startsAt, endsAt time.Time) testpeer.PostableAlert {
	return testpeer.PostableAlert{
		Labels: map[string]string{
			"alertname": "BlackboxTLSCertExpiringSoonWarning",
			"instance":  "smtp-out.example.test:465",
			"severity":  "warning",
		},
		Annotations:  map[string]string{"summary": "TLS certificate expires in less than 14 days"},
		StartsAt:     startsAt,
		EndsAt:       endsAt,
		GeneratorURL: "http://prometheus.example.test/graph",
	}
}

func TestAlertmanagerDeliversFiringThenResolved(t *testing.T) {
	t.Parallel()
	rcv := startReceiver(t)
	am := testpeer.Alertmanager(t, alertmanagerConfig(rcv.webhookURL(), rcv.tokenFile))
	start := time.Now().Add(-time.Minute)

	am.PostAlerts(t, []testpeer.PostableAlert{certAlert(start, time.Time{})})
	testpeer.WaitFor(t, scenarioTimeout, func() bool {
		return rcv.counter(t, metricAlerts, "status", "firing") >= 1
	}, "the receiver never accepted the firing alert")
	if n := rcv.counter(t, metricAlerts, "status", "resolved"); n != 0 {
		t.Fatalf("resolved alerts before the alert was resolved: %v, want 0", n)
	}

	am.PostAlerts(t, []testpeer.PostableAlert{certAlert(start, time.Now().Add(-time.Second))})
	testpeer.WaitFor(t, scenarioTimeout, func() bool {
		return rcv.counter(t, metricAlerts, "status", "resolved") >= 1
	}, "the receiver never accepted the resolved alert")

	if n := rcv.counter(t, metricNotifications, "result", "unauthorized"); n != 0 {
		t.Errorf("unauthorized notifications: %v, want 0 with the right token", n)
	}
}

func TestAlertmanagerRepeatsFiringAlert(t *testing.T) {
	t.Parallel()
	rcv := startReceiver(t)
	am := testpeer.Alertmanager(t, alertmanagerConfig(rcv.webhookURL(), rcv.tokenFile))

	// posted once, ending far in the future: only Alertmanager's repeat can send it again
	alert := certAlert(time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	am.PostAlerts(t, []testpeer.PostableAlert{alert})
	testpeer.WaitFor(t, scenarioTimeout, func() bool {
		return rcv.counter(t, metricAlerts, "status", "firing") >= 1
	}, "the receiver never accepted the firing alert")
	first := time.Now()

	testpeer.WaitFor(t, scenarioTimeout, func() bool {
		return rcv.counter(t, metricAlerts, "status", "firing") >= 2
	}, "Alertmanager never repeated the firing alert")
	gap := time.Since(first)

	t.Logf("repeat came %s after the first notification", gap)
	// the first notification is seen up to a scrape late; allow for it under load
	if gap < repeatInterval-time.Second {
		t.Errorf("repeat came %s after the first notification, before repeat_interval %s",
			gap, repeatInterval)
	}
	if n := rcv.counter(t, metricAlerts, "status", "resolved"); n != 0 {
		t.Errorf("resolved alerts: %v, want 0 for an alert that keeps firing", n)
	}
	alerts := am.Alerts(t)
	if len(alerts) != 1 || alerts[0].Status.State != "active" {
		t.Errorf("Alertmanager holds %+v, want the one alert, active", alerts)
	}
}

func TestAlertmanagerWithWrongTokenIsRefused(t *testing.T) {
	t.Parallel()
	rcv := startReceiver(t)
	wrong := filepath.Join(t.TempDir(), "wrong.token")
	if err := os.WriteFile(wrong, []byte("not-the-receivers-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	am := testpeer.Alertmanager(t, alertmanagerConfig(rcv.webhookURL(), wrong))

	am.PostAlerts(t, []testpeer.PostableAlert{certAlert(time.Now().Add(-time.Minute), time.Time{})})
	testpeer.WaitFor(t, scenarioTimeout, func() bool {
		return rcv.counter(t, metricNotifications, "result", "unauthorized") >= 1
	}, "the receiver never saw Alertmanager's notification with the wrong token")

	for _, c := range []struct{ metric, label, value string }{
		{metricAlerts, "status", "firing"},
		{metricAlerts, "status", "resolved"},
		{metricNotifications, "result", "accepted"},
	} {
		if n := rcv.counter(t, c.metric, c.label, c.value); n != 0 {
			t.Errorf("%s{%s=%q} = %v with a wrong token, want 0", c.metric, c.label, c.value, n)
		}
	}
}

// alertmanagerConfig routes every alert to the receiver at webhookURL, authenticating with
// the token in credentialsFile, with intervals short enough for tests.
func alertmanagerConfig(webhookURL, credentialsFile string) string {
	return fmt.Sprintf(`route:
  receiver: remediator
  group_by: ['alertname', 'instance']
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: %s
receivers:
  - name: remediator
    webhook_configs:
      - url: %q
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: %q
`, model.Duration(repeatInterval), webhookURL, credentialsFile)
}

// receiver is remediator's serve command running in this process.
type receiver struct {
	url       string
	tokenFile string
}

// startReceiver runs serve on a free loopback port with a bearer token from a file, waits
// until it is ready, and stops it when the test ends, checking that it exits cleanly.
func startReceiver(t *testing.T) *receiver {
	t.Helper()
	dir := t.TempDir()
	rcv := &receiver{
		url:       "http://127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t)),
		tokenFile: filepath.Join(dir, "webhook.token"),
	}
	writeFile(t, rcv.tokenFile, "integration-test-token\n")
	cfg := filepath.Join(dir, "remediator.yml")
	writeFile(t, cfg, fmt.Sprintf(
		"webhook:\n  auth:\n    bearer_token_file: %q\nshutdown_grace_period: 5s\n", rcv.tokenFile))

	args := []string{
		"serve",
		"--config.file=" + cfg,
		"--web.listen-address=" + strings.TrimPrefix(rcv.url, "http://"),
		"--storage.path=" + filepath.Join(dir, "data"),
		"--log.level=debug",
	}
	serveInBackground(t, rcv, args...)
	return rcv
}

func (r *receiver) webhookURL() string { return r.url + "/webhook" }

func (r *receiver) ready(t *testing.T) bool {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, r.url+"/readyz", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// not listening yet
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// counter reads one series of a counter from the receiver's /metrics, failing the test
// when the series is missing: every label value exists from start-up.
func (r *receiver) counter(t *testing.T, name, label, value string) float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, r.url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping the receiver: %v", err)
	}
	defer resp.Body.Close()

	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the receiver's metrics: %v", err)
	}
	for _, m := range families[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series %s{%s=%q} in the receiver's metrics", name, label, value)
	return 0
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer collects the receiver's log, written from its goroutines while tests read.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
