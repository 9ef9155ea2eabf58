// Command loadref serves the two reference handlers scripts/load.sh measures the
// webhook against: /drain reads and discards the body, the floor of any receiver on the
// same machine; /decode checks the bearer token in constant time and decodes the body
// with encoding/json, the least a receiver that reads the notification has to do. It
// is a measuring tool only: no limits beyond a body cap, no metrics, no logging per
// request.
package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// maxBody caps what /decode reads, like the webhook's default max_body_size.
const maxBody = 1 << 20

// notification mirrors the webhook payload with plain types; it depends on nothing of
// Alertmanager's or the remediator's.
type notification struct {
	Receiver           string            `json:"receiver"`
	Status             string            `json:"status"`
	Alerts             []alert           `json:"alerts"`
	GroupLabels        map[string]string `json:"groupLabels"`
	CommonLabels       map[string]string `json:"commonLabels"`
	CommonAnnotations  map[string]string `json:"commonAnnotations"`
	ExternalURL        string            `json:"externalURL"`
	Version            string            `json:"version"`
	GroupKey           string            `json:"groupKey"`
	TruncatedAlerts    uint64            `json:"truncatedAlerts"`
	NotificationReason string            `json:"notification_reason"`
}

type alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9796", "Address to listen on.")
	tokenFile := flag.String("token-file", "", "File holding the bearer token /decode expects.")
	flag.Parse()

	if err := run(*listen, *tokenFile); err != nil {
		fmt.Fprintf(os.Stderr, "loadref: %s\n", err)
		os.Exit(1)
	}
}

func run(listen, tokenFile string) error {
	token, err := readToken(tokenFile)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/drain", serveDrain)
	mux.Handle("/decode", decodeHandler{want: sha256.Sum256([]byte(token))})
	hs := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := hs.ListenAndServe(); err != nil {
		return fmt.Errorf("serving on %s: %w", listen, err)
	}
	return nil
}

func readToken(path string) (string, error) {
	if path == "" {
		return "", errors.New("-token-file is required")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading token file: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	if token == "" {
		return "", fmt.Errorf("reading token file: %s is empty", path)
	}
	return token, nil
}

func serveDrain(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusOK)
}

// decodeHandler answers 401 without the expected bearer token, 400 for a body that does
// not decode, and 200 otherwise.
type decodeHandler struct {
	want [sha256.Size]byte
}

func (h decodeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.allow(r.Header.Get("Authorization")) {
		http.Error(w, "missing or invalid credentials", http.StatusUnauthorized)
		return
	}
	var n notification
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&n); err != nil {
		http.Error(w, "decoding body: "+err.Error(), http.StatusBadRequest)
		return
	}

	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "{\"status\":\"accepted\",\"alerts\":%d}\n", len(n.Alerts))
}

// allow compares digests, so that the comparison takes the same time whatever the
// token's length, as the webhook's does.
func (h decodeHandler) allow(header string) bool {
	token, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(h.want[:], got[:]) == 1
}
