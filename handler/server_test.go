package handler

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/remediate"
)

const testToken = "s3cret-token-for-tests"

// recordingIntake keeps what it accepted, or refuses everything with err.
type recordingIntake struct {
	alerts []remediate.Alert
	err    error
}

func (r *recordingIntake) Accept(_ []byte, alerts []remediate.Alert) error {
	if r.err != nil {
		return r.err
	}
	r.alerts = append(r.alerts, alerts...)
	return nil
}

// queueIntake queues alerts without storing them.
type queueIntake struct{ q *remediate.Queue }

func (qi queueIntake) Accept(_ []byte, alerts []remediate.Alert) error { return qi.q.Accept(alerts) }

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestServer(t *testing.T, intake Intake, auth config.Auth) (*Server, *prometheus.Registry) {
	t.Helper()
	a, err := NewAuthenticator(auth, nil, func(p string) string { return p })
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := New(Options{
		WebhookPath: "/webhook",
		Settings:    Settings{Auth: a, MaxBodySize: 1 << 20, RetryAfter: 7e9},
		Intake:      intake,
		Registry:    reg,
		Logger:      zap.NewNop(),
	})
	s.SetReady(true)
	return s, reg
}

func bearerAuth(t *testing.T) config.Auth {
	t.Helper()
	return config.Auth{BearerTokenFile: writeFile(t, "token", testToken+"\n")}
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "notifications", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWebhookRejectsBadInput(t *testing.T) {
	valid := string(fixture(t, "alertmanager-0.35-firing.json"))
	withField := func(old, new string) string { return strings.Replace(valid, old, new, 1) }
	cases := []struct {
		name        string
		method      string
		contentType string
		auth        string
		body        string
		status      int
		result      string
		msg         string
	}{
		{"refuses GET with 405", "GET", "application/json", "Bearer " + testToken, "", 405,
			resultMethodNotAllowed, "method GET not allowed: use POST"},
		{"refuses a request without credentials with 401", "POST", "application/json", "", valid, 401,
			resultUnauthorized, "missing or invalid credentials"},
		{"refuses a wrong token with 401", "POST", "application/json", "Bearer nope", valid, 401,
			resultUnauthorized, "missing or invalid credentials"},
		{"refuses a token sent as basic auth with 401", "POST", "application/json", "Basic " + testToken, valid, 401,
			resultUnauthorized, "missing or invalid credentials"},
		{"refuses form data with 415", "POST", "application/x-www-form-urlencoded", "Bearer " + testToken, valid, 415,
			resultUnsupportedMediaType, `content type "application/x-www-form-urlencoded" not supported: use application/json`},
		{"refuses a missing content type with 415", "POST", "", "Bearer " + testToken, valid, 415,
			resultUnsupportedMediaType, `content type "" not supported: use application/json`},
		{"refuses a body over the limit with 413", "POST", "application/json", "Bearer " + testToken,
			`{"x":"` + strings.Repeat("a", 1<<20) + `"}`, 413, resultTooLarge, "body exceeds the limit of 1MiB"},
		{"refuses malformed JSON with 400", "POST", "application/json", "Bearer " + testToken, `{"version":`, 400,
			reasonMalformed, "malformed JSON: unexpected end of JSON input at byte 11"},
		{"refuses a JSON array with 400", "POST", "application/json", "Bearer " + testToken, `[]`, 400,
			reasonMalformed, "malformed JSON: the body must be a JSON object, not array"},
		{"refuses an empty body with 400", "POST", "application/json", "Bearer " + testToken, ``, 400,
			reasonMalformed, "malformed JSON: body is empty"},
		{"refuses version 3 with 400", "POST", "application/json", "Bearer " + testToken,
			withField(`"version": "4"`, `"version": "3"`), 400, reasonVersion, `version: "3" is not supported, only "4"`},
		{"refuses a missing version with 400", "POST", "application/json", "Bearer " + testToken,
			withField(`"version": "4",`, ``), 400, reasonVersion, `version: required (Alertmanager sends "4")`},
		{"refuses an unknown group status with 400", "POST", "application/json", "Bearer " + testToken,
			withField(`"status": "firing",
    "alerts"`, `"status": "burning",
    "alerts"`), 400, reasonInvalid, `status: must be firing or resolved, not "burning"`},
		{"refuses a notification without alerts with 400", "POST", "application/json", "Bearer " + testToken,
			`{"version":"4","status":"firing","alerts":[]}`, 400, reasonInvalid, "alerts: required, at least one"},
		{"refuses an alert without labels with 400", "POST", "application/json", "Bearer " + testToken,
			`{"version":"4","status":"firing","alerts":[{"status":"firing","startsAt":"2026-12-03T15:55:55Z"}]}`,
			400, reasonInvalid, "alerts[0].labels: required"},
		{"refuses an alert without startsAt with 400", "POST", "application/json", "Bearer " + testToken,
			`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"A"}}]}`,
			400, reasonInvalid, "alerts[0].startsAt: required"},
		{"refuses an alert with a bad status with 400", "POST", "application/json", "Bearer " + testToken,
			`{"version":"4","status":"firing","alerts":[{"status":"on","labels":{"a":"b"},"startsAt":"2026-12-03T15:55:55Z"}]}`,
			400, reasonInvalid, `alerts[0].status: must be firing or resolved, not "on"`},
		{"refuses a malformed time with 400", "POST", "application/json", "Bearer " + testToken,
			`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"yesterday"}]}`,
			400, reasonMalformed, `malformed JSON: invalid time "yesterday"`},
		{"refuses a label of the wrong type with 400", "POST", "application/json", "Bearer " + testToken,
			`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":1}}]}`,
			400, reasonMalformed, "malformed JSON: field alerts.labels: cannot take a JSON number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			intake := &recordingIntake{}
			s, reg := newTestServer(t, intake, bearerAuth(t))
			req := httptest.NewRequest(tc.method, "/webhook", strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)

			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (body %s)", rec.Code, tc.status, rec.Body)
			}
			assertErrorBody(t, rec, tc.msg)
			if len(intake.alerts) != 0 {
				t.Errorf("intake took %d alerts from a rejected request", len(intake.alerts))
			}
			if got := testutil.ToFloat64(s.metrics.notifications.WithLabelValues(tc.result)); got != 1 {
				t.Errorf("remediator_notifications_total{result=%q} = %v, want 1", tc.result, got)
			}
			_ = reg
		})
	}
}

func assertErrorBody(t *testing.T, rec *httptest.ResponseRecorder, want string) {
	t.Helper()
	body := rec.Body.String()
	if strings.Count(body, "\n") != 1 || !strings.HasSuffix(body, "\n") {
		t.Errorf("error body is not one line: %q", body)
	}
	var e struct{ Error string }
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body is not JSON: %q", body)
	}
	if e.Error != want {
		t.Errorf("error %q, want %q", e.Error, want)
	}
}

func TestWebhookChallengesUnauthenticatedCallers(t *testing.T) {
	s, _ := newTestServer(t, &recordingIntake{}, bearerAuth(t))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("POST", "/webhook", nil))
	if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="remediator"` {
		t.Errorf("WWW-Authenticate %q", got)
	}
}

func TestWebhookAnswers503WithRetryAfterWhenTheQueueIsFull(t *testing.T) {
	q := remediate.NewQueue(2)
	s, _ := newTestServer(t, queueIntake{q}, bearerAuth(t))
	body := fixture(t, "alertmanager-0.25-grouped-mixed.json") // three alerts, more than fit

	rec := post(t, s, body, "Bearer "+testToken)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.Code)
	}
	if got := rec.Header().Get("Retry-After"); got != "7" {
		t.Errorf("Retry-After %q, want 7", got)
	}
	assertErrorBody(t, rec, "queue full: retry later")
	if q.Len() != 0 {
		t.Errorf("a refused notification left %d alerts in the queue", q.Len())
	}
}

func TestWebhookAnswers503WhileShuttingDown(t *testing.T) {
	intake := &recordingIntake{}
	s, _ := newTestServer(t, intake, bearerAuth(t))
	s.SetReady(false)

	rec := post(t, s, fixture(t, "alertmanager-0.35-firing.json"), "Bearer "+testToken)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	ready := httptest.NewRecorder()
	s.ServeHTTP(ready, httptest.NewRequest("GET", "/readyz", nil))
	if ready.Code != http.StatusServiceUnavailable {
		t.Errorf("readyz %d while shutting down, want 503", ready.Code)
	}
}

func post(t *testing.T, s http.Handler, body []byte, auth string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", "/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func TestWebhookAcceptsEachAlertByItsOwnStatus(t *testing.T) {
	cases := []struct {
		name     string
		fixture  string
		firing   int
		resolved int
		reason   string
	}{
		{"takes a first notification from Alertmanager 0.35", "alertmanager-0.35-firing.json", 1, 0,
			"first notification"},
		{"takes a repeat with its notification reason", "alertmanager-0.35-repeat.json", 1, 0,
			"repeat interval elapsed"},
		{"takes a resolved alert", "alertmanager-0.35-resolved.json", 0, 1, "all alerts resolved"},
		{"takes Alertmanager 0.25's body without a notification reason", "alertmanager-0.25-firing.json", 1, 0, ""},
		{"splits a firing group into one firing and two resolved alerts", "alertmanager-0.25-grouped-mixed.json",
			1, 2, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			intake := &recordingIntake{}
			s, _ := newTestServer(t, intake, bearerAuth(t))
			rec := post(t, s, fixture(t, tc.fixture), "Bearer "+testToken)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			firing, resolved := 0, 0
			for _, a := range intake.alerts {
				switch a.Status {
				case remediate.StatusFiring:
					firing++
				case remediate.StatusResolved:
					resolved++
				}
				if a.Fingerprint == "" || a.StartsAt.IsZero() || a.GroupKey == "" || a.Receiver != "remediator" {
					t.Errorf("alert lost its context: %+v", a)
				}
				if a.NotificationReason != tc.reason {
					t.Errorf("notification reason %q, want %q", a.NotificationReason, tc.reason)
				}
			}
			if firing != tc.firing || resolved != tc.resolved {
				t.Errorf("firing %d resolved %d, want %d and %d", firing, resolved, tc.firing, tc.resolved)
			}
			got := testutil.ToFloat64(s.metrics.alerts.WithLabelValues(remediate.StatusResolved))
			if int(got) != tc.resolved {
				t.Errorf("remediator_alerts_received_total{status=resolved} = %v, want %d", got, tc.resolved)
			}
		})
	}
}

func TestWebhookKeepsGroupFieldsAndAlertTimes(t *testing.T) {
	intake := &recordingIntake{}
	s, _ := newTestServer(t, intake, bearerAuth(t))
	if rec := post(t, s, fixture(t, "alertmanager-0.35-resolved.json"), "Bearer "+testToken); rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	a := intake.alerts[0]
	if a.EndsAt.IsZero() || !a.EndsAt.After(a.StartsAt) {
		t.Errorf("endsAt %v not kept after startsAt %v", a.EndsAt, a.StartsAt)
	}
	if !strings.HasPrefix(a.GroupKey, "{}:{alertname=") {
		t.Errorf("group key %q", a.GroupKey)
	}
}

func TestWebhookCountsTruncatedAlerts(t *testing.T) {
	intake := &recordingIntake{}
	s, _ := newTestServer(t, intake, bearerAuth(t))
	body := strings.Replace(string(fixture(t, "alertmanager-0.35-firing.json")),
		`"truncatedAlerts": 0`, `"truncatedAlerts": 5`, 1)
	if rec := post(t, s, []byte(body), "Bearer "+testToken); rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	if got := testutil.ToFloat64(s.metrics.truncated); got != 5 {
		t.Errorf("remediator_alerts_truncated_total = %v, want 5", got)
	}
}

func TestWebhookDerivesAMissingFingerprintFromLabels(t *testing.T) {
	intake := &recordingIntake{}
	s, _ := newTestServer(t, intake, bearerAuth(t))
	body := strings.Replace(string(fixture(t, "alertmanager-0.35-firing.json")),
		`"fingerprint": "ebef4aeee06bf9ac"`, `"fingerprint": ""`, 1)
	if rec := post(t, s, []byte(body), "Bearer "+testToken); rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	// Alertmanager computed ebef4aeee06bf9ac from the same labels
	if got := intake.alerts[0].Fingerprint; got != "ebef4aeee06bf9ac" {
		t.Errorf("fingerprint %q, want Alertmanager's ebef4aeee06bf9ac", got)
	}
}

func TestMetricsExistAtZeroFromStartUp(t *testing.T) {
	_, reg := newTestServer(t, &recordingIntake{}, bearerAuth(t))
	n, err := testutil.GatherAndCount(reg, "remediator_notifications_total", "remediator_alerts_received_total",
		"remediator_http_request_duration_seconds")
	if err != nil {
		t.Fatal(err)
	}
	if want := len(notificationResults) + 2 + len(handlerNames); n != want {
		t.Errorf("%d series at start-up, want %d", n, want)
	}
}
