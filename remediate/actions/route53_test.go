package actions

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/remediator/remediator/internal/testpeer"
)

const validationTarget = "_c9edd76ee4a0e2a74388032f3861cc50.ykybfrwcxw.acm-validations.aws."

func record(name, value string) map[string]any {
	return map[string]any{"name": name, "type": "CNAME", "value": value}
}

func TestParseRecordsRefusesRecordsThatCannotBeWritten(t *testing.T) {
	tests := []struct {
		name    string
		records []map[string]any
		want    string
	}{
		{"no record at all", nil, "records: at least one record is required"},
		{"a record without a name", []map[string]any{{"type": "CNAME", "value": "x."}},
			"records[0]: name: required, a non-empty string"},
		{"a record with an unknown key", []map[string]any{{"name": "a", "type": "CNAME", "value": "x", "weight": 1}},
			`records[0]: unknown key "weight": a record has name, type, value and ttl`},
		{"a ttl that is not a number", []map[string]any{{"name": "a", "type": "CNAME", "value": "x", "ttl": "5m"}},
			"records[0]: ttl: want a whole number of seconds, got 5m"},
		{"one name and type with two values",
			[]map[string]any{record("_a.example.test.", "x."), record("_A.example.test", "y.")},
			`records[1]: _A.example.test CNAME is also given with value "x."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRecords(tt.records)
			if err == nil || err.Error() != tt.want || reasonOf(err) != ReasonInvalid {
				t.Fatalf("err = %v, want invalid %q", err, tt.want)
			}
		})
	}
}

func TestParseRecordsCountsARepeatedRecordOnce(t *testing.T) {
	got, err := parseRecords([]map[string]any{
		record("_a.example.test.", "x.acm-validations.aws."),
		record("_A.Example.Test", "X.acm-validations.aws"),
	})
	if err != nil || len(got) != 1 {
		t.Fatalf("records = %v, %v; want the one record", got, err)
	}
}

func TestEnsureRecordsRequestIsTheExactChangeBatch(t *testing.T) {
	e := NewRoute53EnsureRecords(NewAWS(AWSOptions{}))
	p := withDefaults(e, Params{
		"zone_id": "/hostedzone/Z0123456789ABC",
		"records": []map[string]any{
			record("_a.example.test.", "_x.acm-validations.aws."),
			{"name": "_b.example.test.", "type": "cname", "value": "_y.acm-validations.aws.", "ttl": int64(60)},
		},
	})
	req, err := e.Request(p, testEnv())
	if err != nil {
		t.Fatal(err)
	}

	got, _ := json.Marshal(req)
	want := `{"service":"route53","operation":"ChangeResourceRecordSets","input":{"HostedZoneId":"Z0123456789ABC",` +
		`"ChangeBatch":{"Comment":"remediator run run-1 (policy test-policy, step step)","Changes":[` +
		`{"Action":"UPSERT","ResourceRecordSet":{"Name":"_a.example.test.","Type":"CNAME","TTL":300,` +
		`"ResourceRecords":[{"Value":"_x.acm-validations.aws."}]}},` +
		`{"Action":"UPSERT","ResourceRecordSet":{"Name":"_b.example.test.","Type":"CNAME","TTL":60,` +
		`"ResourceRecords":[{"Value":"_y.acm-validations.aws."}]}}]}}}`
	if string(got) != want {
		t.Errorf("request:\n%s\nwant:\n%s", got, want)
	}
}

func TestEnsureRecordsIsCalledOnceEvenWhenThrottled(t *testing.T) {
	log := &requestLog{}
	a, calls := fakeAWS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		awsErrorXML(w, http.StatusBadRequest, "Throttling")
	}))

	_, err := runAction(t, NewRoute53EnsureRecords(a), Params{
		"zone_id": "Z1", "records": []map[string]any{record("_a.example.test.", "_x.acm-validations.aws.")},
	})
	if reasonOf(err) != ReasonThrottled {
		t.Fatalf("err = %v, want throttled", err)
	}
	if got := calls.Attempts(); !reflect.DeepEqual(got, []string{"Route 53/ChangeResourceRecordSets"}) {
		t.Errorf("attempts %v, want one ChangeResourceRecordSets: a mutating call is never retried", got)
	}
	if seen := log.requests(); len(seen) != 1 {
		t.Errorf("the server saw %v, want one request", seen)
	}
}

func TestDiffRecordsRetriesAThrottledLookup(t *testing.T) {
	log := &requestLog{}
	a, calls := fakeAWS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := log.add(r)
		w.Header().Set("Content-Type", "text/xml")
		switch {
		case strings.HasSuffix(r.URL.Path, "/hostedzone/Z1"):
			fmt.Fprint(w, `<GetHostedZoneResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">`+
				`<HostedZone><Id>/hostedzone/Z1</Id><Name>example.test.</Name><CallerReference>c</CallerReference>`+
				`</HostedZone></GetHostedZoneResponse>`)
		case n == 2:
			awsErrorXML(w, http.StatusBadRequest, "Throttling")
		default:
			fmt.Fprint(w, `<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">`+
				`<ResourceRecordSets><ResourceRecordSet><Name>_a.example.test.</Name><Type>CNAME</Type><TTL>300</TTL>`+
				`<ResourceRecords><ResourceRecord><Value>_x.acm-validations.aws.</Value></ResourceRecord>`+
				`</ResourceRecords></ResourceRecordSet></ResourceRecordSets><IsTruncated>false</IsTruncated>`+
				`<MaxItems>1</MaxItems></ListResourceRecordSetsResponse>`)
		}
	}))

	facts := mustRun(t, NewRoute53DiffRecords(a), Params{
		"zone_id": "Z1", "records": []map[string]any{record("_a.example.test", "_x.acm-validations.aws")},
	})
	if facts["in_sync"] != true {
		t.Errorf("in_sync = %v after a retried lookup, want true", facts["in_sync"])
	}
	want := []string{"Route 53/GetHostedZone", "Route 53/ListResourceRecordSets", "Route 53/ListResourceRecordSets"}
	if got := calls.Attempts(); !reflect.DeepEqual(got, want) {
		t.Errorf("attempts %v, want %v: a read-only lookup is retried", got, want)
	}
}

// seedValidationZone makes zone example.test holding two validation records, one of them
// with a value other than ACM's, and some unrelated records.
func seedValidationZone(t *testing.T, cfg aws.Config) string {
	t.Helper()
	zone := testpeer.SeedZone(t, cfg, "example.test")
	testpeer.SeedRecords(t, cfg, zone,
		testpeer.Record{Name: "_present.example.test.", Type: "CNAME", Value: validationTarget},
		testpeer.Record{Name: "_wrong.example.test.", Type: "CNAME", Value: "_stale.acm-validations.aws."},
		testpeer.Record{Name: "_missing.example.test.", Type: "TXT", Value: `"same name, other type"`},
		testpeer.Record{Name: "imap.example.test.", Type: "A", Value: "192.0.2.10"},
		testpeer.Record{Name: "*.example.test.", Type: "A", Value: "192.0.2.11"},
	)
	return zone
}

func TestDiffRecordsAgainstMoto(t *testing.T) {
	a, calls, cfg := motoAWS(t)
	zone := seedValidationZone(t, cfg)

	facts := mustRun(t, NewRoute53DiffRecords(a), Params{"records": []map[string]any{
		// AWS keeps names in lower case and compares without case; moto is
		// case-sensitive, so the seeded names are lower case
		record("_PRESENT.Example.Test", validationTarget),
		record("_wrong.example.test.", validationTarget),
		record("_missing.example.test.", validationTarget),
	}})

	want := Facts{
		"zone_id":   zone,
		"zone_name": "example.test",
		"missing": []map[string]any{{"name": "_missing.example.test.", "type": "CNAME", "value": validationTarget,
			"ttl": int64(300)}},
		"changed": []map[string]any{{"name": "_wrong.example.test.", "type": "CNAME", "value": validationTarget,
			"ttl": int64(300), "current": []string{"_stale.acm-validations.aws."}}},
		"upserts": []map[string]any{
			{"name": "_wrong.example.test.", "type": "CNAME", "value": validationTarget, "ttl": int64(300)},
			{"name": "_missing.example.test.", "type": "CNAME", "value": validationTarget, "ttl": int64(300)},
		},
		"in_sync": false,
	}
	if !reflect.DeepEqual(facts, want) {
		t.Errorf("facts:\n%#v\nwant:\n%#v", facts, want)
	}
	got := calls.Calls()
	if n := testpeer.Count(got, "Route 53"); n != len(got) || !slices.Contains(got, "Route 53/ListHostedZonesByName") {
		t.Errorf("calls %v, want Route 53's only, finding the zone by name", got)
	}
	lookups := 0
	for _, c := range got {
		if c == "Route 53/ListResourceRecordSets" {
			lookups++
		}
	}
	if lookups != 3 {
		t.Errorf("%d ListResourceRecordSets calls, want one per record: %v", lookups, got)
	}
}

func TestDiffRecordsFindsTheLongestPublicZone(t *testing.T) {
	a, _, cfg := motoAWS(t)
	public := testpeer.SeedZone(t, cfg, "example.test")
	sub := testpeer.SeedZone(t, cfg, "mail.example.test")
	_, err := route53.NewFromConfig(cfg).CreateHostedZone(t.Context(), &route53.CreateHostedZoneInput{
		Name: aws.String("example.test"), CallerReference: aws.String("private"),
		HostedZoneConfig: &r53types.HostedZoneConfig{PrivateZone: true},
		VPC:              &r53types.VPC{VPCId: aws.String("vpc-12345678"), VPCRegion: r53types.VPCRegionUsEast1},
	})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, record, want string
	}{
		{"a record of the parent zone skips the private zone of the same name", "_a.imap.example.test.", public},
		{"a record of the delegated zone is in that zone", "_a.imap.mail.example.test.", sub},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			facts := mustRun(t, NewRoute53DiffRecords(a), Params{"records": []map[string]any{record(tt.record, "x.")}})
			if facts["zone_id"] != tt.want {
				t.Errorf("zone_id = %v, want %s", facts["zone_id"], tt.want)
			}
		})
	}
}

func TestDiffRecordsRefusesRecordsOutsideTheZone(t *testing.T) {
	a, _, cfg := motoAWS(t)
	zone := testpeer.SeedZone(t, cfg, "example.test")

	_, err := runAction(t, NewRoute53DiffRecords(a), Params{
		"zone_id": zone, "records": []map[string]any{record("_a.example.test.", "x."), record("_a.other.test.", "x.")},
	})
	want := "record _a.other.test. is not in zone example.test"
	if reasonOf(err) != ReasonInvalid || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want the record outside the zone refused", err)
	}
}

func TestEnsureRecordsChangesOnlyTheRecordsItIsGiven(t *testing.T) {
	a, calls, cfg := motoAWS(t)
	zone := seedValidationZone(t, cfg)
	before := testpeer.ZoneRecords(t, cfg, zone)

	facts := mustRun(t, NewRoute53EnsureRecords(a), Params{
		"zone_id": zone, "wait": true,
		"records": []map[string]any{record("_wrong.example.test.", validationTarget),
			record("_missing.example.test.", validationTarget)},
	})

	if facts["status"] != "INSYNC" || facts["in_sync"] != true || facts["change_id"] == "" {
		t.Errorf("facts %v, want an INSYNC change", facts)
	}
	if got := calls.Attempts(); !reflect.DeepEqual(got, []string{"Route 53/ChangeResourceRecordSets"}) {
		t.Errorf("attempts %v, want the one change (moto answers INSYNC at once, so no GetChange)", got)
	}
	after := testpeer.ZoneRecords(t, cfg, zone)
	changed := zoneDiff(before, after)
	want := []string{
		"+ _missing.example.test. CNAME " + validationTarget,
		"- _wrong.example.test. CNAME _stale.acm-validations.aws.",
		"+ _wrong.example.test. CNAME " + validationTarget,
	}
	slices.Sort(want)
	if !reflect.DeepEqual(changed, want) {
		t.Errorf("zone changes:\n%s\nwant:\n%s", strings.Join(changed, "\n"), strings.Join(want, "\n"))
	}
}

// zoneDiff lists the record sets only in before ("- ...") or only in after ("+ ..."),
// sorted.
func zoneDiff(before, after []r53types.ResourceRecordSet) []string {
	render := func(sets []r53types.ResourceRecordSet) []string {
		var out []string
		for _, rs := range sets {
			for _, v := range rs.ResourceRecords {
				out = append(out, fmt.Sprintf("%s %s %s", aws.ToString(rs.Name), rs.Type, aws.ToString(v.Value)))
			}
		}
		return out
	}
	b, a := render(before), render(after)
	var out []string
	for _, s := range b {
		if !slices.Contains(a, s) {
			out = append(out, "- "+s)
		}
	}
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, "+ "+s)
		}
	}
	slices.Sort(out)
	return out
}
