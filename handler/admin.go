package handler

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/remediator/remediator/remediate"
)

// Planner plans alerts without mutating anything.
type Planner interface {
	Plan(ctx context.Context, alerts []remediate.Alert) []*remediate.AlertPlan
}

// planTimeout bounds a plan: its read-only steps run for real.
const planTimeout = 2 * time.Minute

// EnablePlan serves POST /plan: the same plan as `remediator plan`, for reviewers,
// authenticated like the webhook. The body is a webhook body or a list of alerts;
// ?output=text answers in the human-readable form.
func (s *Server) EnablePlan(p Planner) {
	s.Handle("/plan", handlerPlan, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.servePlan(w, r, p)
	}))
}

func (s *Server) servePlan(w http.ResponseWriter, r *http.Request, p Planner) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use POST")
		return
	}
	if !s.Authenticate(w, r) {
		return
	}
	st := s.settings.Load()
	body, rej := s.readBody(w, r, st.MaxBodySize)
	if rej != nil {
		writeError(w, rej.status, rej.msg)
		return
	}
	defer s.bodies.Put(body)

	alerts, err := DecodeAlerts(body.Bytes(), time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), planTimeout)
	defer cancel()

	plans := p.Plan(ctx, alerts)
	if r.URL.Query().Get("output") == "text" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_ = remediate.WritePlanText(w, plans)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(plans)
}

// EnableReload serves POST /-/reload, authenticated like the webhook: it calls reload
// and answers 200, or 500 with the reason the old configuration stays.
func (s *Server) EnableReload(reload func() error) {
	s.Handle("/-/reload", handlerAdmin, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use POST")
			return
		}
		if !s.Authenticate(w, r) {
			return
		}
		if err := reload(); err != nil {
			s.logger.Warn("reload refused", zap.Error(err))
			writeError(w, http.StatusInternalServerError,
				"reload failed, the previous configuration stays: "+err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{\"status\":\"reloaded\"}\n"))
	}))
}

// Pauser pauses and resumes policies.
type Pauser interface {
	Pause(ctx context.Context, policy, by string) error
	Resume(ctx context.Context, policy string) error
	Paused(ctx context.Context) (map[string]string, error)
}

// EnablePause serves POST /-/pause and POST /-/resume (?policy=NAME for one policy,
// none for all) and GET /-/pause (the pauses in force), authenticated like the webhook.
func (s *Server) EnablePause(p Pauser) {
	s.Handle("/-/pause", handlerAdmin, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.servePause(w, r, p, true)
	}))
	s.Handle("/-/resume", handlerAdmin, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.servePause(w, r, p, false)
	}))
}

func (s *Server) servePause(w http.ResponseWriter, r *http.Request, p Pauser, pause bool) {
	if !s.Authenticate(w, r) {
		return
	}
	policy := r.URL.Query().Get("policy")
	var err error
	switch {
	case r.Method == http.MethodGet && pause:
		// listing only
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use POST")
		return
	case pause:
		err = p.Pause(r.Context(), policy, "admin API from "+r.RemoteAddr)
	default:
		err = p.Resume(r.Context(), policy)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if r.Method == http.MethodPost {
		s.logger.Warn("remediation pause changed", zap.Bool("paused", pause), zap.String("policy", policy),
			zap.String("remote", r.RemoteAddr))
	}
	paused, err := p.Paused(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"paused": paused})
}
