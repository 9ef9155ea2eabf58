package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

// registerHealthcheck adds healthcheck: it asks a running server's /readyz (or /healthz
// with --alive) and exits 0 or 1, for container health checks in images without a
// shell or an HTTP client.
func registerHealthcheck(app *kingpin.Application, commands map[string]func(context.Context) int, stderr io.Writer) {
	cmd := app.Command("healthcheck", "Exit 0 when a running server is ready (or alive, with --alive), 1 otherwise.")
	url := cmd.Flag("web.url", "The server's base URL.").Default("http://127.0.0.1" + defaultListenAddress).String()
	alive := cmd.Flag("alive", "Check /healthz (the process answers) instead of /readyz.").Bool()
	timeout := cmd.Flag("timeout", "How long to wait for the answer.").Default("3s").Duration()

	commands["healthcheck"] = func(ctx context.Context) int {
		path := "/readyz"
		if *alive {
			path = "/healthz"
		}
		if err := probeHealth(ctx, strings.TrimSuffix(*url, "/")+path, *timeout); err != nil {
			fmt.Fprintf(stderr, "remediator healthcheck: %s\n", err)
			return 1
		}
		return 0
	}
}

func probeHealth(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()

	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}
