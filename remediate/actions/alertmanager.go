package actions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// ErrNoAlertmanager is returned when an escalation or a silence is attempted without
// alertmanager.url in the main configuration.
var ErrNoAlertmanager = errors.New("alertmanager.url is not configured")

// Alertmanager talks to Alertmanager's API v2: it posts escalation alerts and creates
// and expires silences. Every call is made once; none is retried.
type Alertmanager struct {
	url    string
	token  string
	client *http.Client
}

// NewAlertmanager returns a client for the Alertmanager at baseURL (empty: none), with a
// bearer token read from tokenFile when it is set.
func NewAlertmanager(baseURL, tokenFile string, timeout time.Duration) (*Alertmanager, error) {
	am := &Alertmanager{url: strings.TrimSuffix(baseURL, "/"), client: &http.Client{Timeout: timeout}}
	if tokenFile != "" {
		raw, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading alertmanager.bearer_token_file: %w", err)
		}
		am.token = strings.TrimSpace(string(raw))
	}
	return am, nil
}

// URL returns the configured base URL.
func (am *Alertmanager) URL() string { return am.url }

// PostableAlert is an alert as Alertmanager's API v2 takes it.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// SilenceMatcher is one matcher of a silence.
type SilenceMatcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual bool   `json:"isEqual"`
}

// Silence is a silence as Alertmanager's API v2 takes it.
type Silence struct {
	Matchers  []SilenceMatcher `json:"matchers"`
	StartsAt  time.Time        `json:"startsAt"`
	EndsAt    time.Time        `json:"endsAt"`
	CreatedBy string           `json:"createdBy"`
	Comment   string           `json:"comment"`
}

// PostAlerts posts alerts.
func (am *Alertmanager) PostAlerts(ctx context.Context, alerts []PostableAlert) error {
	return am.call(ctx, http.MethodPost, "/api/v2/alerts", alerts, nil)
}

// CreateSilence creates s and returns its id.
func (am *Alertmanager) CreateSilence(ctx context.Context, s Silence) (string, error) {
	var out struct {
		SilenceID string `json:"silenceID"`
	}
	if err := am.call(ctx, http.MethodPost, "/api/v2/silences", s, &out); err != nil {
		return "", err
	}
	return out.SilenceID, nil
}

// ExpireSilence expires the silence id.
func (am *Alertmanager) ExpireSilence(ctx context.Context, id string) error {
	return am.call(ctx, http.MethodDelete, "/api/v2/silence/"+url.PathEscape(id), nil, nil)
}

func (am *Alertmanager) call(ctx context.Context, method, path string, in, out any) error {
	if am == nil || am.url == "" {
		return &StepError{Reason: ReasonInvalid, Err: ErrNoAlertmanager}
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, am.url+path, body)
	if err != nil {
		return &StepError{Reason: ReasonInvalid, Err: fmt.Errorf("building request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "remediator")
	if am.token != "" {
		req.Header.Set("Authorization", "Bearer "+am.token)
	}
	resp, err := am.client.Do(req)
	if err != nil {
		return &StepError{Reason: ReasonUnavailable,
			Err: fmt.Errorf("calling alertmanager %s %s: %w", method, path, err)}
	}
	defer func() { _ = resp.Body.Close() }()

	return decodeAlertmanagerResponse(resp, method, path, out)
}

func decodeAlertmanagerResponse(resp *http.Response, method, path string, out any) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		reason := ReasonFailed
		switch {
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			reason = ReasonDenied
		case resp.StatusCode == http.StatusNotFound:
			reason = ReasonNotFound
		case resp.StatusCode == http.StatusTooManyRequests:
			reason = ReasonThrottled
		case resp.StatusCode >= 500:
			reason = ReasonUnavailable
		case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnprocessableEntity:
			reason = ReasonInvalid
		}
		return &StepError{Reason: reason, Err: fmt.Errorf("alertmanager %s %s: %s: %s", method, path,
			resp.Status, strings.TrimSpace(string(raw[:min(len(raw), 512)])))}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &StepError{Reason: ReasonFailed, Err: fmt.Errorf("decoding alertmanager's answer: %w", err)}
	}
	return nil
}
