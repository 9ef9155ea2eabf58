package actions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logstypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

const (
	defaultLogsWindow  = 168 * time.Hour
	defaultLogsLimit   = 100
	maxLogsLimit       = 10000
	defaultLogsSamples = 3
	maxLogsSamples     = 20
	// logSampleBytes caps each sample message: they go to the audit log.
	logSampleBytes = 512
	// maxLogsPages bounds the pages read from one log group. FilterLogEvents can answer
	// pages without events while it works through a large group; the search stops there
	// and says it was truncated.
	maxLogsPages = 50
)

// NewLogsSearch returns the logs.search action, which counts the events of CloudWatch
// Logs groups that match a filter pattern within a window.
func NewLogsSearch(a *AWS) Action { return &logsSearch{aws: a, now: time.Now} }

type logsSearch struct {
	aws *AWS
	now func() time.Time
}

// Spec declares logs.search.
func (l *logsSearch) Spec() Spec {
	return Spec{
		Name: "logs.search",
		Doc: "Searches one or more CloudWatch Logs groups for events matching a filter pattern " +
			"within a window ending now, and reports how many matched, when the latest did, and " +
			"a few of the latest messages. A log group that does not exist is no failure: it " +
			"is listed in missing, and exists is false when none of the groups exists. Give " +
			"every group a function may log to, such as the log group of a Lambda function in " +
			"both its older and its newer name. Read-only.",
		Params: []Param{
			{Name: "log_groups", Type: StringList, Required: true,
				Doc: "The log groups' names; one name alone is a list of one."},
			{Name: "filter_pattern", Type: String, Required: true,
				Doc: "A CloudWatch Logs filter pattern: a term (rateLimited), a quoted phrase " +
					`("urn:ietf:params:acme:error:rateLimited"), several terms that must all ` +
					"appear, or ?a ?b for either. Terms are case-sensitive."},
			{Name: "since", Type: Duration, Default: defaultLogsWindow,
				Doc: "How far back the window starts; defaults to 168h, a week."},
			{Name: "limit", Type: Int, Default: int64(defaultLogsLimit),
				Doc: "The most matching events counted over all groups; defaults to 100, at most " +
					"10000. The search stops there and truncated says so."},
			{Name: "samples", Type: Int, Default: int64(defaultLogsSamples),
				Doc: "How many of the latest matching messages to report, each cut to 512 " +
					"bytes; defaults to 3, at most 20. They are recorded in the audit log: set " +
					"0 when the log may hold anything confidential."},
			regionParam(),
		},
		Facts: []Fact{
			{Name: "exists", Type: Bool, Doc: "Whether any of the log groups exists."},
			{Name: "missing", Type: StringList, Doc: "The log groups that do not exist."},
			{Name: "count", Type: Int, Doc: "How many events matched, at most limit."},
			{Name: "latest", Type: Time,
				Doc: "When the latest matching event counted happened; the zero time when none did."},
			{Name: "latest_group", Type: String, Doc: "The log group of that event; empty when none."},
			{Name: "samples", Type: StringList,
				Doc: "The latest matching messages, newest first, each cut to 512 bytes."},
			{Name: "truncated", Type: Bool,
				Doc: "Whether the search stopped at limit or at its page bound, so that more " +
					"events may match."},
		},
		IAM: []string{"logs:FilterLogEvents"},
	}
}

// logsQuery is what a search step asks for.
type logsQuery struct {
	groups  []string
	pattern string
	since   time.Duration
	limit   int
	samples int
	region  string
}

func parseLogsQuery(p Params) (logsQuery, error) {
	q := logsQuery{pattern: strings.TrimSpace(p.String("filter_pattern")), since: p.Duration("since"),
		limit: int(p.Int("limit")), samples: int(p.Int("samples")), region: p.String("region")}
	for _, g := range p.Strings("log_groups") {
		if g = strings.TrimSpace(g); g != "" && !slices.Contains(q.groups, g) {
			q.groups = append(q.groups, g)
		}
	}
	switch {
	case len(q.groups) == 0:
		return logsQuery{}, Invalid("log_groups: at least one log group is required")
	case q.pattern == "":
		return logsQuery{}, Invalid("filter_pattern: required; a search matching every event counts nothing useful")
	case q.since <= 0:
		return logsQuery{}, Invalid("since %s: must be positive", q.since)
	case q.limit < 1 || q.limit > maxLogsLimit:
		return logsQuery{}, Invalid("limit %d: must be from 1 to %d", q.limit, maxLogsLimit)
	case q.samples < 0 || q.samples > maxLogsSamples:
		return logsQuery{}, Invalid("samples %d: must be from 0 to %d", q.samples, maxLogsSamples)
	}
	return q, nil
}

// Request describes the searches: FilterLogEvents on each group over the window.
func (l *logsSearch) Request(p Params, _ Env) (Request, error) {
	q, err := parseLogsQuery(p)
	if err != nil {
		return Request{}, err
	}
	in := map[string]any{"LogGroupNames": q.groups, "FilterPattern": q.pattern,
		"Since": shortHours(q.since), "Limit": q.limit}
	return Request{Service: "logs", Operation: "FilterLogEvents", Input: withRegion(in, q.region)}, nil
}

// shortHours writes whole hours as "168h", as policies do, and anything else as Go does.
func shortHours(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// Run searches every group and reports what matched.
func (l *logsSearch) Run(ctx context.Context, p Params, _ Env) (Facts, error) {
	q, err := parseLogsQuery(p)
	if err != nil {
		return nil, err
	}
	cfg, err := l.aws.regionalConfig(ctx, q.region)
	if err != nil {
		return nil, err
	}
	client := cloudwatchlogs.NewFromConfig(cfg)

	end := l.now()
	s := &logsResult{missing: []string{}}
	for _, g := range q.groups {
		if err := s.search(ctx, client, q, g, end.Add(-q.since), end); err != nil {
			return nil, err
		}
	}
	return s.facts(q), nil
}

// logsResult gathers the matches of every group.
type logsResult struct {
	missing   []string
	events    []logEvent
	truncated bool
}

type logEvent struct {
	at      time.Time
	group   string
	message string
}

// search reads the matching events of one group, page after page, until limit events
// are counted in all, the pages end, or maxLogsPages is reached.
func (s *logsResult) search(ctx context.Context, client *cloudwatchlogs.Client, q logsQuery, group string,
	start, end time.Time,
) error {
	in := &cloudwatchlogs.FilterLogEventsInput{
		LogGroupName:  aws.String(group),
		FilterPattern: aws.String(q.pattern),
		StartTime:     aws.Int64(start.UnixMilli()),
		EndTime:       aws.Int64(end.UnixMilli()),
	}
	for page := 0; ; page++ {
		remaining := q.limit - len(s.events)
		if remaining <= 0 || page == maxLogsPages {
			s.truncated = true
			return nil
		}
		in.Limit = aws.Int32(int32(remaining))
		out, err := client.FilterLogEvents(ctx, in)
		var missing *logstypes.ResourceNotFoundException
		if errors.As(err, &missing) {
			s.missing = append(s.missing, group)
			return nil
		}
		if err != nil {
			return awsError("searching log group "+group, err)
		}
		s.add(group, out.Events, remaining)
		if aws.ToString(out.NextToken) == "" {
			return nil
		}
		in.NextToken = out.NextToken
	}
}

func (s *logsResult) add(group string, events []logstypes.FilteredLogEvent, room int) {
	if len(events) > room {
		events, s.truncated = events[:room], true
	}
	for _, e := range events {
		s.events = append(s.events, logEvent{at: time.UnixMilli(aws.ToInt64(e.Timestamp)).UTC(), group: group,
			message: aws.ToString(e.Message)})
	}
}

func (s *logsResult) facts(q logsQuery) Facts {
	slices.SortStableFunc(s.events, func(a, b logEvent) int { return b.at.Compare(a.at) })
	samples := []string{}
	for _, e := range s.events[:min(q.samples, len(s.events))] {
		samples = append(samples, headUTF8(strings.TrimRight(e.message, "\r\n"), logSampleBytes))
	}
	var latest time.Time
	latestGroup := ""
	if len(s.events) > 0 {
		latest, latestGroup = s.events[0].at, s.events[0].group
	}
	return Facts{
		"exists":       len(s.missing) < len(q.groups),
		"missing":      s.missing,
		"count":        int64(len(s.events)),
		"latest":       latest,
		"latest_group": latestGroup,
		"samples":      samples,
		"truncated":    s.truncated,
	}
}
