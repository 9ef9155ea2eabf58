package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/remediate"
)

// Intake takes the alerts of an accepted notification: all of them, or none with an
// error. body is the notification as received, valid only during the call.
// remediate.ErrQueueFull and remediate.ErrQueueClosed make the webhook answer 503.
type Intake interface {
	Accept(body []byte, alerts []remediate.Alert) error
}

// Receipts records what the webhook received and rejected, for the audit log. Calls
// must not block for long: they are on the webhook's path.
type Receipts interface {
	Received(n *Notification, alerts []remediate.Alert)
	Rejected(reason, msg, remote string)
}

type nopReceipts struct{}

func (nopReceipts) Received(*Notification, []remediate.Alert) {}
func (nopReceipts) Rejected(string, string, string)           {}

// Settings are what a configuration reload can change without a restart.
type Settings struct {
	Auth        *Authenticator
	MaxBodySize int64
	RetryAfter  time.Duration
}

// Options configure a Server.
type Options struct {
	WebhookPath string
	Settings    Settings
	Intake      Intake
	Registry    *prometheus.Registry
	Logger      *zap.Logger
	// Receipts, when set, records receipts and rejections.
	Receipts Receipts
}

// Server serves the webhook and the operational endpoints.
type Server struct {
	webhookPath string
	settings    atomic.Pointer[Settings]
	intake      Intake
	receipts    Receipts
	ready       atomic.Bool
	metrics     *metrics
	logger      *zap.Logger
	mux         *http.ServeMux
	bodies      sync.Pool
}

// New returns a Server that is not yet ready; call SetReady once everything is loaded.
func New(opts Options) *Server {
	s := &Server{
		webhookPath: opts.WebhookPath,
		intake:      opts.Intake,
		receipts:    opts.Receipts,
		metrics:     newMetrics(opts.Registry),
		logger:      opts.Logger,
		mux:         http.NewServeMux(),
		bodies:      sync.Pool{New: func() any { return new(bytes.Buffer) }},
	}
	s.settings.Store(&opts.Settings)
	if s.receipts == nil {
		s.receipts = nopReceipts{}
	}

	s.Handle(opts.WebhookPath, handlerWebhook, http.HandlerFunc(s.serveWebhook))
	s.Handle("/healthz", handlerHealthz, http.HandlerFunc(serveHealthz))
	s.Handle("/readyz", handlerReadyz, http.HandlerFunc(s.serveReadyz))
	s.Handle("/metrics", handlerMetrics, promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{}))
	return s
}

// Handle serves h at path, timing it under the handler label name.
func (s *Server) Handle(path, name string, h http.Handler) {
	obs := s.metrics.requestSeconds.WithLabelValues(name)
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		obs.Observe(time.Since(start).Seconds())
	})
}

// ServeHTTP dispatches to the endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// SetReady says whether the server accepts notifications; readyz follows it.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Ready reports whether the server accepts notifications.
func (s *Server) Ready() bool { return s.ready.Load() }

// Update swaps the settings a reload can change.
func (s *Server) Update(st Settings) { s.settings.Store(&st) }

// Authenticate checks r's credentials like the webhook does, answering 401 itself when
// they fail. Other endpoints that need the webhook's credentials use it.
func (s *Server) Authenticate(w http.ResponseWriter, r *http.Request) bool {
	st := s.settings.Load()
	if st.Auth.Allow(r) {
		return true
	}
	st.Auth.Challenge(w)
	writeError(w, http.StatusUnauthorized, "missing or invalid credentials")
	return false
}

func serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !s.ready.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// rejection is a webhook request turned away: its status, bounded reason and message.
type rejection struct {
	status int
	result string
	msg    string
}

func (s *Server) serveWebhook(w http.ResponseWriter, r *http.Request) {
	st := s.settings.Load()
	body, n, rej := s.readNotification(w, r, st)
	if rej == nil {
		rej = s.accept(body.Bytes(), n)
	}
	if body != nil {
		s.bodies.Put(body)
	}
	if rej != nil {
		s.reject(w, r, st, rej)
		return
	}

	s.metrics.notifications.WithLabelValues(resultAccepted).Inc()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "{\"status\":\"accepted\",\"alerts\":%d}\n", len(n.Data.Alerts))
}

// readNotification runs every check that comes before the notification is accepted.
// The caller puts the body back in the pool when it is done with it.
func (s *Server) readNotification(w http.ResponseWriter, r *http.Request,
	st *Settings) (*bytes.Buffer, *Notification, *rejection) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, nil, &rejection{http.StatusMethodNotAllowed, resultMethodNotAllowed,
			fmt.Sprintf("method %s not allowed: use POST", r.Method)}
	}
	if !st.Auth.Allow(r) {
		st.Auth.Challenge(w)
		return nil, nil, &rejection{http.StatusUnauthorized, resultUnauthorized, "missing or invalid credentials"}
	}
	if !s.ready.Load() {
		return nil, nil, &rejection{http.StatusServiceUnavailable, resultUnavailable,
			"not accepting notifications: shutting down"}
	}
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		return nil, nil, &rejection{http.StatusUnsupportedMediaType, resultUnsupportedMediaType,
			fmt.Sprintf("content type %q not supported: use application/json", truncate(ct, 64))}
	}
	body, rej := s.readBody(w, r, st.MaxBodySize)
	if rej != nil {
		return nil, nil, rej
	}
	n, err := DecodeNotification(body.Bytes())
	if err != nil {
		s.bodies.Put(body)
		var inv *InvalidError
		if errors.As(err, &inv) {
			return nil, nil, &rejection{http.StatusBadRequest, inv.Reason, inv.Msg}
		}
		return nil, nil, &rejection{http.StatusBadRequest, reasonMalformed, err.Error()}
	}
	return body, n, nil
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit int64) (*bytes.Buffer, *rejection) {
	tooLarge := &rejection{http.StatusRequestEntityTooLarge, resultTooLarge,
		fmt.Sprintf("body exceeds the limit of %s", config.ByteSize(limit))}
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	buf := s.bodies.Get().(*bytes.Buffer)
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		s.bodies.Put(buf)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, &rejection{http.StatusBadRequest, reasonMalformed, "reading body: " + err.Error()}
	}
	return buf, nil
}

func (s *Server) accept(body []byte, n *Notification) *rejection {
	alerts := n.Split(time.Now())
	err := s.intake.Accept(body, alerts)
	switch {
	case errors.Is(err, remediate.ErrQueueFull):
		return &rejection{http.StatusServiceUnavailable, resultQueueFull, "queue full: retry later"}
	case err != nil:
		return &rejection{http.StatusServiceUnavailable, resultUnavailable,
			"not accepting notifications: " + err.Error()}
	}

	s.receipts.Received(n, alerts)
	firing := 0
	for i := range alerts {
		if alerts[i].Status == remediate.StatusFiring {
			firing++
		}
	}
	s.metrics.alerts.WithLabelValues(remediate.StatusFiring).Add(float64(firing))
	s.metrics.alerts.WithLabelValues(remediate.StatusResolved).Add(float64(len(alerts) - firing))
	if n.TruncatedAlerts > 0 {
		s.metrics.truncated.Add(float64(n.TruncatedAlerts))
		s.logger.Warn("notification truncated by alertmanager; raise max_alerts or narrow the route",
			zap.String("group_key", n.GroupKey), zap.Uint64("truncated_alerts", n.TruncatedAlerts))
	}
	if ce := s.logger.Check(zap.DebugLevel, "notification accepted"); ce != nil {
		ce.Write(zap.String("group_key", n.GroupKey), zap.String("status", n.Status),
			zap.Int("alerts", len(alerts)), zap.String("notification_reason", n.NotificationReason))
	}
	return nil
}

func (s *Server) reject(w http.ResponseWriter, r *http.Request, st *Settings, rej *rejection) {
	s.metrics.notifications.WithLabelValues(rej.result).Inc()
	s.receipts.Rejected(rej.result, rej.msg, r.RemoteAddr)
	s.logger.Warn("notification rejected",
		zap.String("reason", rej.result), zap.Int("code", rej.status), zap.String("error", rej.msg),
		zap.String("remote", r.RemoteAddr), zap.String("user_agent", truncate(r.UserAgent(), 128)))
	if rej.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(st.RetryAfter.Seconds())))
	}
	writeError(w, rej.status, rej.msg)
}

// writeError answers with a one-line JSON error.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}

func isJSON(ct string) bool {
	if ct == "application/json" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
