package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

type adminFlags struct {
	url       string
	tokenFile string
	policy    string
}

// registerPause adds pause, resume and paused: they call a running server's admin
// endpoints, which keep the pauses in its state store.
func registerPause(app *kingpin.Application, commands map[string]func(context.Context) int, stdout, stderr io.Writer) {
	for _, c := range []struct{ name, help, method, path string }{
		{"pause", "Stop new runs of every policy, or of --policy, until resumed.", http.MethodPost, "/-/pause"},
		{"resume", "Lift a pause.", http.MethodPost, "/-/resume"},
		{"paused", "List the pauses in force.", http.MethodGet, "/-/pause"},
	} {
		f := &adminFlags{}
		cmd := app.Command(c.name, c.help)
		cmd.Flag("web.url", "The server's base URL.").Default("http://127.0.0.1" + defaultListenAddress).
			StringVar(&f.url)
		cmd.Flag("auth.token-file", "A file holding the webhook's bearer token.").
			Default("data/" + generatedTokenFile).StringVar(&f.tokenFile)
		if c.name != "paused" {
			cmd.Flag("policy", "One policy; without it, all of them.").StringVar(&f.policy)
		}
		commands[c.name] = func(ctx context.Context) int {
			if err := callAdmin(ctx, f, c.method, c.path, stdout); err != nil {
				fmt.Fprintf(stderr, "remediator %s: %s\n", c.name, err)
				return 1
			}
			return 0
		}
	}
}

func callAdmin(ctx context.Context, f *adminFlags, method, path string, stdout io.Writer) error {
	raw, err := os.ReadFile(f.tokenFile)
	if err != nil {
		return fmt.Errorf("reading --auth.token-file: %w", err)
	}
	u := strings.TrimSuffix(f.url, "/") + path
	if f.policy != "" {
		u += "?policy=" + url.QueryEscape(f.policy)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(raw)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s: %w", u, err)
	}
	defer func() { _ = resp.Body.Close() }()

	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	_, err = stdout.Write(body)
	return err
}
