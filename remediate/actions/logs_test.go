package actions

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/testpeer"
)

const (
	newerLogGroup = "/cabal/lambda/certbot-renewal"
	olderLogGroup = "/aws/lambda/cabal-certbot-renewal"
)

func TestLogsSearchRefusesParametersThatCannotWork(t *testing.T) {
	tests := []struct {
		name   string
		params Params
		want   string
	}{
		{"no log group", Params{"log_groups": []string{" "}, "filter_pattern": "x"},
			"log_groups: at least one log group is required"},
		{"no filter pattern", Params{"log_groups": []string{"g"}},
			"filter_pattern: required; a search matching every event counts nothing useful"},
		{"a window that is not positive", Params{"log_groups": []string{"g"}, "filter_pattern": "x",
			"since": time.Duration(0)}, "since 0s: must be positive"},
		{"a limit past FilterLogEvents' own", Params{"log_groups": []string{"g"}, "filter_pattern": "x",
			"limit": int64(10001)}, "limit 10001: must be from 1 to 10000"},
		{"too many samples", Params{"log_groups": []string{"g"}, "filter_pattern": "x", "samples": int64(21)},
			"samples 21: must be from 0 to 20"},
	}
	action := NewLogsSearch(NewAWS(AWSOptions{}))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := action.Request(withDefaults(action, tt.params), testEnv())
			if reasonOf(err) != ReasonInvalid || err.Error() != tt.want {
				t.Fatalf("err = %v, want invalid %q", err, tt.want)
			}
		})
	}
}

func TestLogsSearchRequestNamesEveryGroupOnce(t *testing.T) {
	action := NewLogsSearch(NewAWS(AWSOptions{}))
	p := withDefaults(action, Params{"log_groups": []string{newerLogGroup, olderLogGroup, newerLogGroup},
		"filter_pattern": "rateLimited"})
	req, err := action.Request(p, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(req.Input)
	want := `{"FilterPattern":"rateLimited","Limit":100,"LogGroupNames":["/cabal/lambda/certbot-renewal",` +
		`"/aws/lambda/cabal-certbot-renewal"],"Since":"168h"}`
	if string(got) != want {
		t.Errorf("input %s\nwant  %s", got, want)
	}
}

// moto filters only on plain terms and quoted phrases, as the searches here use; any
// other pattern matches every event.
func TestLogsSearchAgainstMoto(t *testing.T) {
	a, calls, cfg := motoAWS(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	testpeer.SeedLogEvents(t, cfg, olderLogGroup,
		testpeer.LogEvent{At: now.Add(-200 * time.Hour), Message: "urn:ietf:params:acme:error:rateLimited (too old)"},
		testpeer.LogEvent{At: now.Add(-50 * time.Hour),
			Message: "renewal failed: urn:ietf:params:acme:error:rateLimited"},
		testpeer.LogEvent{At: now.Add(-49 * time.Hour), Message: "certbot: nothing to renew"},
		testpeer.LogEvent{At: now.Add(-2 * time.Hour), Message: "429 rateLimited: too many certificates\n"},
	)
	testpeer.SeedLogEvents(t, cfg, "/cabal/lambda/quiet", testpeer.LogEvent{At: now.Add(-time.Hour), Message: "ok"})
	action := NewLogsSearch(a)

	tests := []struct {
		name   string
		params Params
		want   Facts
	}{
		{
			name:   "rate limiting in the older group is found, the missing newer group noted",
			params: Params{"log_groups": []string{newerLogGroup, olderLogGroup}, "filter_pattern": "rateLimited"},
			want: Facts{"exists": true, "missing": []string{newerLogGroup}, "count": int64(2),
				"latest": now.Add(-2 * time.Hour), "latest_group": olderLogGroup, "truncated": false,
				"samples": []string{"429 rateLimited: too many certificates",
					"renewal failed: urn:ietf:params:acme:error:rateLimited"}},
		},
		{
			name: "a quoted phrase matches it exactly",
			params: Params{"log_groups": []string{olderLogGroup},
				"filter_pattern": `"urn:ietf:params:acme:error:rateLimited"`, "samples": int64(0)},
			want: Facts{"exists": true, "missing": []string{}, "count": int64(1), "latest": now.Add(-50 * time.Hour),
				"latest_group": olderLogGroup, "truncated": false, "samples": []string{}},
		},
		{
			name: "a shorter window leaves older events out",
			params: Params{"log_groups": []string{olderLogGroup}, "filter_pattern": "rateLimited",
				"since": 24 * time.Hour},
			want: Facts{"exists": true, "missing": []string{}, "count": int64(1), "latest": now.Add(-2 * time.Hour),
				"latest_group": olderLogGroup, "truncated": false,
				"samples": []string{"429 rateLimited: too many certificates"}},
		},
		{
			name: "the limit stops the count and says so",
			params: Params{"log_groups": []string{olderLogGroup}, "filter_pattern": "rateLimited",
				"limit": int64(1), "samples": int64(1)},
			want: Facts{"exists": true, "missing": []string{}, "count": int64(1), "latest": now.Add(-50 * time.Hour),
				"latest_group": olderLogGroup, "truncated": true,
				"samples": []string{"renewal failed: urn:ietf:params:acme:error:rateLimited"}},
		},
		{
			name:   "a group without a match counts none",
			params: Params{"log_groups": []string{"/cabal/lambda/quiet"}, "filter_pattern": "rateLimited"},
			want: Facts{"exists": true, "missing": []string{}, "count": int64(0), "latest": time.Time{},
				"latest_group": "", "truncated": false, "samples": []string{}},
		},
		{
			name:   "no group at all is exists false, not a failure",
			params: Params{"log_groups": []string{newerLogGroup}, "filter_pattern": "rateLimited"},
			want: Facts{"exists": false, "missing": []string{newerLogGroup}, "count": int64(0),
				"latest": time.Time{}, "latest_group": "", "truncated": false, "samples": []string{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustRun(t, action, tt.params)
			wantFactsAsDeclared(t, action, got)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("facts\n%v\nwant\n%v", got, tt.want)
			}
			for _, c := range calls.Calls() {
				if c != "CloudWatch Logs/FilterLogEvents" {
					t.Errorf("called %s, want FilterLogEvents only", c)
				}
			}
		})
	}
}

func TestLogsSearchFailsOnAnythingButAMissingGroup(t *testing.T) {
	log := &requestLog{}
	a, calls := fakeAWS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"AccessDeniedException","message":"not allowed"}`))
	}))
	_, err := runAction(t, NewLogsSearch(a), Params{"log_groups": []string{newerLogGroup},
		"filter_pattern": "rateLimited"})
	if reasonOf(err) != ReasonDenied || !strings.Contains(err.Error(), "searching log group "+newerLogGroup) {
		t.Fatalf("err = %v, want denied", err)
	}
	if got := calls.Calls(); !slices.Equal(got, []string{"CloudWatch Logs/FilterLogEvents"}) {
		t.Errorf("calls %v", got)
	}
}
