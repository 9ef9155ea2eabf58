package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/handler"
	"github.com/remediator/remediator/internal/testpeer"
	"github.com/remediator/remediator/policies"
	"github.com/remediator/remediator/remediate"
	"github.com/remediator/remediator/remediate/actions"
)

// The Cabalmail ACM pack (policies/cabalmail-acm.yaml) against moto: each scenario seeds
// moto with what a Cabalmail installation holds, runs the pack, and checks moto's state
// and the AWS calls made, recorded by the SDK's middleware. moto's differences from AWS
// are listed in remediate/actions/aws_test.go; the ones that matter here: moto gives no
// RenewalSummary (the decisions that read it are tested by TestACMPackDecisions on
// facts), its validation records all share one random label and value, and its
// certificates stay PENDING_VALIDATION for a minute whatever DNS holds.

const (
	acmPackFile    = "../../policies/cabalmail-acm.yaml"
	imapAlertFile  = "../../policies/testdata/alerts/cabalmail-imap-993.json"
	httpsAlertFile = "../../policies/testdata/alerts/cabalmail-https.json"
	nlbPolicy      = "cabalmail-acm-nlb"
	cloudFrontPol  = "cabalmail-acm-cloudfront"
)

// cabalmail is the AWS side of a Cabalmail installation as moto holds it.
type cabalmail struct {
	cfg      aws.Config
	cert     string            // the wildcard's ARN
	old      string            // an older certificate for the same names, when seeded
	records  []testpeer.Record // its two validation records
	zone     string            // example.test
	listener string            // cabal-nlb's TLS listener on 993
}

// seedOptions choose what seedCabalmail seeds besides the basics.
type seedOptions struct {
	// unrelated is how many records of other names the zone holds.
	unrelated int
	// older seeds an older certificate for the same names first.
	older bool
	// pinned makes cabal-nlb's listener serve the older certificate, while the current
	// one serves another load balancer, cabal-web, so that ACM counts it in use too.
	pinned bool
	// unused leaves the current certificate in use nowhere, with pinned: a certificate
	// requested anew that nobody attached.
	unused bool
}

// seedCabalmail seeds the wildcard *.example.test (with example.test and
// *.mail.example.test, so that it has two validation records), the public zone
// example.test holding both records and unrelated other records, and the load balancer
// cabal-nlb whose TLS listener on 993 serves the wildcard.
func seedCabalmail(t *testing.T, opts seedOptions) *cabalmail {
	t.Helper()
	testpeer.Moto(t)
	c := &cabalmail{cfg: testpeer.MotoConfig(t)}
	names := []string{"*.example.test", "example.test", "*.mail.example.test"}
	if opts.older || opts.pinned {
		c.old, _ = testpeer.SeedCertificate(t, c.cfg, names[0], names[1:]...)
		// moto's NotAfter counts seconds: the renewed certificate must expire later
		time.Sleep(1100 * time.Millisecond)
	}
	c.cert, c.records = testpeer.SeedCertificate(t, c.cfg, names[0], names[1:]...)
	if len(c.records) != 2 {
		t.Fatalf("moto gave validation records %v, want two", c.records)
	}

	c.zone = testpeer.SeedZone(t, c.cfg, "example.test")
	others := make([]testpeer.Record, opts.unrelated)
	for i := range others {
		others[i] = testpeer.Record{Name: fmt.Sprintf("host%05d.example.test.", i), Type: "A",
			Value: fmt.Sprintf("192.0.2.%d", i%250+1), TTL: 300}
	}
	testpeer.SeedRecords(t, c.cfg, c.zone, append(others, c.records...)...)

	// moto marks a certificate in use once an ELBv2 listener serves it, listing the
	// listener's ARN where AWS lists the load balancer's
	served := c.cert
	if opts.pinned {
		served = c.old
	}
	if opts.pinned && !opts.unused {
		testpeer.SeedNetworkLoadBalancer(t, c.cfg, "cabal-web", 443, c.cert)
	}
	c.listener = testpeer.SeedNetworkLoadBalancer(t, c.cfg, "cabal-nlb", 993, served)
	return c
}

// zoneJSON is the whole zone as moto lists it, to compare byte for byte.
func (c *cabalmail) zoneJSON(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(testpeer.ZoneRecords(t, c.cfg, c.zone))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// zoneChanges lists the record values only in before ("- ...") or only now ("+ ..."),
// sorted.
func (c *cabalmail) zoneChanges(t *testing.T, before []r53types.ResourceRecordSet) []string {
	t.Helper()
	render := func(sets []r53types.ResourceRecordSet) map[string]bool {
		out := map[string]bool{}
		for _, rs := range sets {
			for _, v := range rs.ResourceRecords {
				out[fmt.Sprintf("%s %s %s", aws.ToString(rs.Name), rs.Type, aws.ToString(v.Value))] = true
			}
		}
		return out
	}
	b, a := render(before), render(testpeer.ZoneRecords(t, c.cfg, c.zone))
	var out []string
	for s := range b {
		if !a[s] {
			out = append(out, "- "+s)
		}
	}
	for s := range a {
		if !b[s] {
			out = append(out, "+ "+s)
		}
	}
	slices.Sort(out)
	return out
}

// holds reports whether the zone holds r, looking up r alone.
func (c *cabalmail) holds(t *testing.T, r testpeer.Record) bool {
	t.Helper()
	out, err := route53.NewFromConfig(c.cfg).ListResourceRecordSets(t.Context(), &route53.ListResourceRecordSetsInput{
		HostedZoneId: aws.String(c.zone), StartRecordName: aws.String(r.Name),
		StartRecordType: r53types.RRType(r.Type), MaxItems: aws.Int32(1),
	})
	if err != nil {
		t.Fatalf("looking up %s: %v", r.Name, err)
	}
	if len(out.ResourceRecordSets) == 0 {
		return false
	}
	rs := out.ResourceRecordSets[0]
	return aws.ToString(rs.Name) == r.Name && len(rs.ResourceRecords) == 1 &&
		aws.ToString(rs.ResourceRecords[0].Value) == r.Value
}

func line(r testpeer.Record) string { return r.Name + " " + r.Type + " " + r.Value }

// packEngine loads the pack into an engine whose AWS calls calls records.
func packEngine(t *testing.T, mode config.Mode) (*remediate.Engine, *testpeer.AWSCalls) {
	t.Helper()
	calls := &testpeer.AWSCalls{}
	am, err := actions.NewAlertmanager("", "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	reg := actions.Builtin(actions.Deps{Alertmanager: am,
		AWS: actions.NewAWS(actions.AWSOptions{APIOptions: []func(*middleware.Stack) error{calls.APIOption}})})
	set, err := policies.Load([]string{acmPackFile}, ".", reg)
	if err != nil {
		t.Fatalf("loading the pack: %v", err)
	}
	rules := &remediate.Rules{Policies: set, Mode: mode, Actions: reg, Alertmanager: am}
	return remediate.NewEngine(rules, prometheus.NewRegistry(), zap.NewNop()), calls
}

func fixtureAlerts(t *testing.T, file string) []remediate.Alert {
	t.Helper()
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := handler.DecodeAlerts(body, time.Now())
	if err != nil {
		t.Fatalf("decoding %s: %v", file, err)
	}
	return alerts
}

// onlyRun returns the one run of policy in plans.
func onlyRun(t *testing.T, plans []*remediate.AlertPlan, policy string) *remediate.RunReport {
	t.Helper()
	if len(plans) != 1 || len(plans[0].Runs) != 1 || plans[0].Runs[0].Policy != policy {
		b, _ := json.MarshalIndent(plans, "", "  ")
		t.Fatalf("plans hold %s, want one run of %s", b, policy)
	}
	return plans[0].Runs[0]
}

func stepOf(t *testing.T, run *remediate.RunReport, id string) remediate.StepReport {
	t.Helper()
	for _, s := range run.Steps {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("run %s has no step %s", run.ID, id)
	return remediate.StepReport{}
}

// mutatingSteps lists the ids of the mutating steps a run planned or executed.
func mutatingSteps(run *remediate.RunReport) []string {
	var out []string
	for _, s := range run.Steps {
		if s.Mutates && (s.Decision == remediate.DecisionPlanned || s.Decision == remediate.DecisionExecuted) {
			out = append(out, s.ID)
		}
	}
	return out
}

// changeBatchJSON is the exact ChangeResourceRecordSets input the pack's upsert step of
// run sends for records.
func changeBatchJSON(zone, runID, policy string, records ...testpeer.Record) string {
	changes := make([]string, len(records))
	for i, r := range records {
		changes[i] = fmt.Sprintf(`{"Action":"UPSERT","ResourceRecordSet":{"Name":%q,"Type":%q,"TTL":300,`+
			`"ResourceRecords":[{"Value":%q}]}}`, r.Name, r.Type, r.Value)
	}
	return fmt.Sprintf(`{"HostedZoneId":%q,"ChangeBatch":{"Comment":"remediator run %s (policy %s, step upsert)",`+
		`"Changes":[%s]}}`, zone, runID, policy, strings.Join(changes, ","))
}

// assertJSON checks that v encodes to the same JSON value as want, whatever the order
// of object keys.
func assertJSON(t *testing.T, what string, v any, want string) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var got, wantValue any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &wantValue); err != nil {
		t.Fatalf("the expected %s is not JSON: %v", what, err)
	}
	if !reflect.DeepEqual(got, wantValue) {
		t.Errorf("%s:\n%s\nwant:\n%s", what, raw, want)
	}
}

func writePackConfig(t *testing.T, extra string) string {
	t.Helper()
	pack, err := filepath.Abs(acmPackFile)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "remediator.yml")
	writeFile(t, file, fmt.Sprintf("policy_files:\n  - %q\n%s", pack, extra))
	return file
}

func TestACMPackPlanPrintsTheExactUpsertAndNothingElseMutating(t *testing.T) {
	c := seedCabalmail(t, seedOptions{unrelated: 10})
	testpeer.DeleteRecord(t, c.cfg, c.zone, c.records[1])
	before := c.zoneJSON(t)
	cfgFile := writePackConfig(t, "")

	var stdout, stderr bytes.Buffer
	args := []string{"plan", "--config.file=" + cfgFile, "--alerts=" + imapAlertFile, "--output=json"}
	if code := run(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("plan exited %d: %s", code, stderr.String())
	}
	var plans []*remediate.AlertPlan
	if err := json.Unmarshal(stdout.Bytes(), &plans); err != nil {
		t.Fatalf("decoding the plan: %v\n%s", err, stdout.String())
	}
	r := onlyRun(t, plans, nlbPolicy)

	if got := mutatingSteps(r); !reflect.DeepEqual(got, []string{"upsert"}) {
		t.Fatalf("mutating steps planned or executed: %v, want only upsert", got)
	}
	upsert := stepOf(t, r, "upsert")
	assertJSON(t, "planned change batch", upsert.Request.Input, changeBatchJSON(c.zone, r.ID, nlbPolicy, c.records[1]))
	if live := stepOf(t, r, "live"); live.Decision != remediate.DecisionFailed {
		t.Errorf("the probe of imap.example.test, a name without DNS, was %s; want failed, and the run going on",
			live.Decision)
	}
	if after := c.zoneJSON(t); !bytes.Equal(after, before) {
		t.Errorf("dry-run changed the zone:\nbefore %s\nafter  %s", before, after)
	}

	stdout.Reset()
	args[len(args)-1] = "--output=text"
	if code := run(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("plan exited %d: %s", code, stderr.String())
	}
	text := stdout.String()
	if n := strings.Count(text, "would call"); n != 1 || !strings.Contains(text, c.records[1].Name) ||
		!strings.Contains(text, "would call route53 ChangeResourceRecordSets") {
		t.Errorf("text plan shows %d requests, want the one upsert of %s:\n%s", n, c.records[1].Name, text)
	}
}

func TestACMPackLiveRestoresTheMissingRecord(t *testing.T) {
	c := seedCabalmail(t, seedOptions{unrelated: 10})
	testpeer.DeleteRecord(t, c.cfg, c.zone, c.records[1])
	before := testpeer.ZoneRecords(t, c.cfg, c.zone)
	rcv := startPackReceiver(t, "mode: live\n")

	rcv.post(t, imapAlertFile)
	testpeer.WaitFor(t, scenarioTimeout, func() bool {
		return len(c.zoneChanges(t, before)) > 0
	}, "the missing validation record was never restored")

	// let the run finish, then check nothing else changed
	time.Sleep(500 * time.Millisecond)
	if got, want := c.zoneChanges(t, before), []string{"+ " + line(c.records[1])}; !reflect.DeepEqual(got, want) {
		t.Errorf("zone changes %v, want %v", got, want)
	}
}

func TestACMPackScenarios(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, c *cabalmail)
		changes func(c *cabalmail) []string
	}{
		{
			name:    "all validation records present and equal: nothing planned, nothing changed",
			damage:  func(*testing.T, *cabalmail) {},
			changes: func(*cabalmail) []string { return nil },
		},
		{
			name: "one of two validation CNAMEs deleted: exactly that one upserted",
			damage: func(t *testing.T, c *cabalmail) {
				testpeer.DeleteRecord(t, c.cfg, c.zone, c.records[0])
			},
			changes: func(c *cabalmail) []string { return []string{"+ " + line(c.records[0])} },
		},
		{
			name: "a validation CNAME with a wrong value: upserted to the right one",
			damage: func(t *testing.T, c *cabalmail) {
				testpeer.SeedRecords(t, c.cfg, c.zone, testpeer.Record{Name: c.records[1].Name, Type: "CNAME",
					Value: "_stale.acm-validations.aws.", TTL: 300})
			},
			changes: func(c *cabalmail) []string {
				stale := c.records[1].Name + " CNAME _stale.acm-validations.aws."
				return []string{"+ " + line(c.records[1]), "- " + stale}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := seedCabalmail(t, seedOptions{unrelated: 10})
			tt.damage(t, c)
			before := testpeer.ZoneRecords(t, c.cfg, c.zone)
			want := tt.changes(c)

			plan, _ := packEngine(t, config.ModeLive)
			r := onlyRun(t, plan.Plan(t.Context(), fixtureAlerts(t, imapAlertFile)), nlbPolicy)
			wantPlanned := []string{"upsert"}
			if want == nil {
				wantPlanned = nil
			}
			if got := mutatingSteps(r); !reflect.DeepEqual(got, wantPlanned) {
				t.Errorf("dry-run planned %v, want %v", got, wantPlanned)
			}

			engine, calls := packEngine(t, config.ModeLive)
			for _, a := range fixtureAlerts(t, imapAlertFile) {
				engine.Process(t.Context(), a)
			}
			if got := c.zoneChanges(t, before); !reflect.DeepEqual(got, want) {
				t.Errorf("zone changes %v, want %v", got, want)
			}
			changes := 0
			for _, call := range calls.Calls() {
				if call == "Route 53/ChangeResourceRecordSets" {
					changes++
				}
			}
			if wantChanges := min(len(want), 1); changes != wantChanges {
				t.Errorf("%d ChangeResourceRecordSets calls, want %d", changes, wantChanges)
			}
		})
	}
}

func TestACMPackRoute53CallsDoNotGrowWithTheZone(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds a zone of 10,000 records")
	}
	counts := map[int][]string{}
	for _, size := range []int{10, 10000} {
		t.Run(strconv.Itoa(size)+" unrelated records", func(t *testing.T) {
			c := seedCabalmail(t, seedOptions{unrelated: size})
			testpeer.DeleteRecord(t, c.cfg, c.zone, c.records[1])

			engine, calls := packEngine(t, config.ModeLive)
			for _, a := range fixtureAlerts(t, imapAlertFile) {
				engine.Process(t.Context(), a)
			}
			// listing 10,000 records takes moto seconds; the scenarios above check that
			// nothing else changes
			if !c.holds(t, c.records[1]) {
				t.Errorf("the deleted record %s was not restored", line(c.records[1]))
			}
			for _, call := range calls.Detailed() {
				if !strings.HasPrefix(call.Name, "Route 53/") {
					continue
				}
				counts[size] = append(counts[size], call.Name)
				if in, ok := call.Input.(*route53.ListResourceRecordSetsInput); ok &&
					(aws.ToInt32(in.MaxItems) != 1 || aws.ToString(in.StartRecordName) == "") {
					t.Errorf("a lookup listed more than one record: %+v", in)
				}
			}
		})
	}
	if !reflect.DeepEqual(counts[10], counts[10000]) || len(counts[10]) == 0 {
		t.Errorf("Route 53 calls with 10 records: %v\nwith 10,000: %v\nwant the same", counts[10], counts[10000])
	}
}

func TestACMPackEscalatesAListenerPinnedToAnOlderCertificate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		unused bool
	}{
		{"when the newer certificate serves another load balancer", false},
		{"when the newer certificate is in use nowhere", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := seedCabalmail(t, seedOptions{unrelated: 10, pinned: true, unused: tc.unused})
			engine, _ := packEngine(t, config.ModeLive)
			r := onlyRun(t, engine.Plan(t.Context(), fixtureAlerts(t, imapAlertFile)), nlbPolicy)

			if newest := stepOf(t, r, "newest"); newest.Facts["arn"] != c.cert {
				t.Fatalf("the pack found %v as the newest certificate, want %s", newest.Facts["arn"], c.cert)
			}
			listener := stepOf(t, r, "listener")
			if listener.Facts["current"] != false || listener.Facts["serving_arn"] != c.old {
				t.Errorf("listener facts %v, want current false, serving %s", listener.Facts, c.old)
			}
			if got := mutatingSteps(r); !reflect.DeepEqual(got, []string{"escalate"}) {
				t.Fatalf("mutating steps %v, want the escalation only", got)
			}
			reason := escalationReason(t, stepOf(t, r, "escalate"))
			if want := "listener " + c.listener + " is pinned to " + c.old; !strings.Contains(reason, want) {
				t.Errorf("escalation reason %q, want it to say %q", reason, want)
			}
		})
	}
}

func TestACMPackCloudFrontLayout(t *testing.T) {
	c := seedCabalmail(t, seedOptions{unrelated: 10, older: true})
	distribution := testpeer.SeedDistribution(t, c.cfg, "example.test", c.old)
	testpeer.DeleteRecord(t, c.cfg, c.zone, c.records[0])

	engine, _ := packEngine(t, config.ModeLive)
	r := onlyRun(t, engine.Plan(t.Context(), fixtureAlerts(t, httpsAlertFile)), cloudFrontPol)

	if got := mutatingSteps(r); !reflect.DeepEqual(got, []string{"upsert", "escalate"}) {
		t.Fatalf("mutating steps %v, want the upsert and the escalation", got)
	}
	assertJSON(t, "planned change batch", stepOf(t, r, "upsert").Request.Input,
		changeBatchJSON(c.zone, r.ID, cloudFrontPol, c.records[0]))
	reason := escalationReason(t, stepOf(t, r, "escalate"))
	if want := "distribution " + distribution + " is pinned to " + c.old; !strings.Contains(reason, want) {
		t.Errorf("escalation reason %q, want it to say %q", reason, want)
	}
}

func escalationReason(t *testing.T, s remediate.StepReport) string {
	t.Helper()
	alerts, ok := s.Request.Input.([]actions.PostableAlert)
	if !ok || len(alerts) != 1 {
		t.Fatalf("escalation request %#v, want one alert", s.Request)
	}
	return alerts[0].Annotations["reason"]
}

// TestACMPackDecisions checks the runbook's decisions on facts moto cannot produce:
// renewals, their reasons, and certificates close to expiry.
func TestACMPackDecisions(t *testing.T) {
	healthy := func() map[string]map[string]any {
		return map[string]map[string]any{
			"live": {"ok": false, "decision": "failed", "error": "probing imap.example.test:993: no such host"},
			"cert": {"ok": true, "decision": "executed", "error": "", "arn": "arn:cert",
				"domain_name": "*.example.test", "status": "ISSUED", "days_left": int64(20),
				"renewal_eligibility": "ELIGIBLE", "renewal_status": "PENDING_AUTO_RENEWAL", "renewal_reason": "",
				"validation_records": []map[string]any{}},
			"dns": {"ok": true, "decision": "executed", "error": "", "in_sync": true,
				"upserts": []map[string]any{}},
			"upsert":   {"ok": false, "decision": "skipped", "error": ""},
			"verify":   {"ok": false, "decision": "skipped", "error": ""},
			"listener": {"ok": true, "decision": "executed", "error": "", "current": true, "serving_arn": "arn:cert"},
		}
	}
	tests := []struct {
		name   string
		change func(f map[string]map[string]any)
		reason string // empty: no escalation
	}{
		{"a certificate renewing on its own needs nobody", func(map[string]map[string]any) {}, ""},
		{"20 days left and no renewal yet is still ACM's to do", func(f map[string]map[string]any) {
			f["cert"]["renewal_status"] = ""
		}, ""},
		{"fewer than 14 days left and not renewing escalates", func(f map[string]map[string]any) {
			f["cert"]["days_left"], f["cert"]["renewal_status"] = int64(10), ""
			f["cert"]["renewal_eligibility"] = "INELIGIBLE"
		}, "with 10 days left; ACM has not started renewing it (renewal eligibility INELIGIBLE)"},
		{"fewer than 14 days left while ACM renews needs nobody", func(f map[string]map[string]any) {
			f["cert"]["days_left"] = int64(10)
		}, ""},
		{"fewer than 14 days left waiting for validation escalates", func(f map[string]map[string]any) {
			f["cert"]["days_left"], f["cert"]["renewal_status"] = int64(9), "PENDING_VALIDATION"
		}, "its renewal is PENDING_VALIDATION"},
		{"a renewal refused by CAA escalates with the reason", func(f map[string]map[string]any) {
			f["cert"]["renewal_status"], f["cert"]["renewal_reason"] = "FAILED", "CAA_ERROR"
		}, "its renewal is FAILED because CAA_ERROR"},
		{"validation denied escalates whatever the days left", func(f map[string]map[string]any) {
			f["cert"]["renewal_status"], f["cert"]["renewal_reason"] = "PENDING_VALIDATION", "DOMAIN_VALIDATION_DENIED"
		}, "because DOMAIN_VALIDATION_DENIED"},
		{"an expired certificate escalates", func(f map[string]map[string]any) {
			f["cert"]["status"], f["cert"]["days_left"], f["cert"]["renewal_status"] = "EXPIRED", int64(-1), ""
		}, "is EXPIRED with -1 days left"},
		{"a listener that could not be checked escalates", func(f map[string]map[string]any) {
			f["listener"] = map[string]any{"ok": false, "decision": "failed",
				"error": "describing load balancer cabal-nlb: denied"}
		}, "checking the listener failed: describing load balancer cabal-nlb: denied"},
		{"validation records that could not be checked escalate", func(f map[string]map[string]any) {
			f["dns"] = map[string]any{"ok": false, "decision": "failed", "error": "finding the hosted zone: not found"}
		}, "checking its validation records failed: finding the hosted zone: not found"},
	}
	step := packStep(t, acmPackFile, nlbPolicy, "escalate")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			facts := healthy()
			tt.change(facts)
			checkEscalation(t, step, "imap.example.test:993", nlbPolicy, facts, tt.reason)
		})
	}
}

// packStep loads the pack in file and returns the step id of policy.
func packStep(t *testing.T, file, policy, id string) *policies.Step {
	t.Helper()
	set, err := policies.Load([]string{file}, ".", actions.Builtin(actions.Deps{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range set.Policies {
		if p.Name != policy {
			continue
		}
		for _, s := range p.Steps {
			if s.ID == id {
				return s
			}
		}
	}
	t.Fatalf("no step %s in policy %s", id, policy)
	return nil
}

// startPackReceiver runs serve on a free loopback port with the pack and extra
// configuration, and stops it when the test ends.
func startPackReceiver(t *testing.T, extra string) *receiver {
	t.Helper()
	dir := t.TempDir()
	rcv := &receiver{
		url:       "http://127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t)),
		tokenFile: filepath.Join(dir, "webhook.token"),
	}
	writeFile(t, rcv.tokenFile, "acm-pipeline-token\n")
	cfg := writePackConfig(t, fmt.Sprintf("webhook:\n  auth:\n    bearer_token_file: %q\nshutdown_grace_period: 5s\n%s",
		rcv.tokenFile, extra))

	args := []string{"serve", "--config.file=" + cfg, "--web.listen-address=" + strings.TrimPrefix(rcv.url, "http://"),
		"--storage.path=" + filepath.Join(dir, "data"), "--log.level=debug"}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	exited := make(chan struct{})
	go func() {
		run(ctx, args, io.Discard, logs)
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			t.Errorf("serve still running 15s after it was told to stop")
		}
		if t.Failed() {
			t.Logf("remediator log:\n%s", logs.String())
		}
	})
	testpeer.WaitFor(t, 15*time.Second, func() bool { return rcv.ready(t) }, "serve never became ready")
	return rcv
}

// post sends a webhook body from a file as Alertmanager does.
func (r *receiver) post(t *testing.T, file string) {
	t.Helper()
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, r.webhookURL(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer acm-pipeline-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("posting %s: %v", file, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("posting %s: %s %s", file, resp.Status, b)
	}
}

// checkEscalation evaluates a pack's escalate step over facts and checks that it
// escalates exactly when reason is not empty, with a reason that says it.
func checkEscalation(t *testing.T, step *policies.Step, instance, policy string,
	facts map[string]map[string]any, reason string) {
	t.Helper()
	sc := policies.NewScope(template.Alert{Labels: template.KV{"instance": instance}}, "run-1", policy, time.Now())
	for id, f := range facts {
		sc.SetFacts(id, f)
	}
	escalates, err := step.Condition(sc)
	if err != nil {
		t.Fatalf("evaluating when: %v", err)
	}
	if escalates != (reason != "") {
		t.Fatalf("escalates: %v, want %v", escalates, reason != "")
	}
	if !escalates {
		return
	}
	p, err := step.Params(sc)
	if err != nil {
		t.Fatalf("rendering parameters: %v", err)
	}
	if got := p.String("reason"); !strings.Contains(got, reason) {
		t.Errorf("reason\n  %s\nwant it to say\n  %s", got, reason)
	}
}
