package handler

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/remediator/remediator/remediate"
)

// Results of a webhook request, the values of remediator_notifications_total's result
// label.
const (
	resultAccepted             = "accepted"
	resultUnauthorized         = "unauthorized"
	resultMethodNotAllowed     = "method_not_allowed"
	resultUnsupportedMediaType = "unsupported_media_type"
	resultTooLarge             = "too_large"
	resultQueueFull            = "queue_full"
	resultUnavailable          = "unavailable"
)

var notificationResults = []string{
	resultAccepted, resultUnauthorized, resultMethodNotAllowed, resultUnsupportedMediaType,
	resultTooLarge, reasonMalformed, reasonVersion, reasonInvalid, resultQueueFull, resultUnavailable,
}

// Handler names, the values of the request duration histogram's handler label.
const (
	handlerWebhook = "webhook"
	handlerHealthz = "healthz"
	handlerReadyz  = "readyz"
	handlerMetrics = "metrics"
	handlerPlan    = "plan"
	handlerAdmin   = "admin"
)

var handlerNames = []string{handlerWebhook, handlerHealthz, handlerReadyz, handlerMetrics, handlerPlan, handlerAdmin}

type metrics struct {
	notifications  *prometheus.CounterVec
	alerts         *prometheus.CounterVec
	truncated      prometheus.Counter
	requestSeconds *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_notifications_total",
			Help: "Webhook notifications received, by result.",
		}, []string{"result"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_alerts_received_total",
			Help: "Alerts accepted from notifications, by their own status.",
		}, []string{"status"}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "remediator_alerts_truncated_total",
			Help: "Alerts Alertmanager left out of notifications because of max_alerts; they never reach remediator.",
		}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "remediator_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by handler.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"handler"}),
	}
	reg.MustRegister(m.notifications, m.alerts, m.truncated, m.requestSeconds)

	for _, r := range notificationResults {
		m.notifications.WithLabelValues(r)
	}
	for _, s := range []string{remediate.StatusFiring, remediate.StatusResolved} {
		m.alerts.WithLabelValues(s)
	}
	for _, h := range handlerNames {
		m.requestSeconds.WithLabelValues(h)
	}
	return m
}
