package actions

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	acmtypes "github.com/aws/aws-sdk-go-v2/service/acm/types"

	"github.com/remediator/remediator/internal/testpeer"
)

const recordedARN = "arn:aws:acm:us-east-1:123456789012:certificate/"

// recordedACM plays ACM's JSON 1.1 protocol from the answers in testdata/acm, and keeps
// the ARNs it was asked to describe.
type recordedACM struct {
	mu        sync.Mutex
	described []string
}

func (s *recordedACM) describedARNs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.described)
}

func (s *recordedACM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var in struct{ CertificateArn string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var file string
	switch target := r.Header.Get("X-Amz-Target"); target {
	case "CertificateManager.ListCertificates":
		file = "list-certificates.json"
	case "CertificateManager.DescribeCertificate":
		s.mu.Lock()
		s.described = append(s.described, in.CertificateArn)
		s.mu.Unlock()
		file = strings.TrimPrefix(in.CertificateArn, recordedARN) + ".json"
	default:
		http.Error(w, "unexpected operation "+target, http.StatusBadRequest)
		return
	}
	body, err := os.ReadFile(filepath.Join("testdata", "acm", filepath.Base(file)))
	if err != nil {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"ResourceNotFoundException","message":"Could not find certificate"}`))
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_, _ = w.Write(body)
}

var recordedValidationRecords = []map[string]any{{
	"name":  "_5f0c3e9a7b1d2c4e6f8a0b1c2d3e4f5a.example.test.",
	"type":  "CNAME",
	"value": "_9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d.zfyfvmchrl.acm-validations.aws.",
}}

func TestACMDescribeReadsRecordedRenewals(t *testing.T) {
	now := time.Date(2026, 1, 17, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		id   string
		want Facts
	}{
		{
			name: "a renewal waiting for validation gives its status and its one shared record",
			id:   "0a1b2c3d-renewing",
			want: Facts{
				"status": "ISSUED", "renewal_status": "PENDING_VALIDATION", "renewal_reason": "",
				"renewal_eligibility": "ELIGIBLE", "in_use": true, "days_left": int64(13),
				"validation_records": recordedValidationRecords,
			},
		},
		{
			name: "a renewal that failed on CAA gives the reason",
			id:   "1b2c3d4e-caa",
			want: Facts{
				"status": "ISSUED", "renewal_status": "FAILED", "renewal_reason": "CAA_ERROR",
				"validation_records": recordedValidationRecords,
			},
		},
		{
			name: "an expired certificate without renewal has no renewal status",
			id:   "2c3d4e5f-expired",
			want: Facts{
				"status": "EXPIRED", "renewal_status": "", "renewal_eligibility": "INELIGIBLE",
				"in_use": false, "in_use_by": []string{}, "days_left": int64(-352),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := fakeAWS(t, &recordedACM{})
			d := &acmDescribe{aws: a, now: func() time.Time { return now }}
			facts := mustRun(t, d, Params{"arn": recordedARN + tt.id})

			if facts["arn"] != recordedARN+tt.id {
				t.Errorf("arn = %v, want %s", facts["arn"], recordedARN+tt.id)
			}
			for k, want := range tt.want {
				if !reflect.DeepEqual(facts[k], want) {
					t.Errorf("%s = %#v, want %#v", k, facts[k], want)
				}
			}
		})
	}
}

func TestACMDescribeReportsWhatUsesTheCertificate(t *testing.T) {
	a, _ := fakeAWS(t, &recordedACM{})
	facts := mustRun(t, NewACMDescribe(a), Params{"arn": recordedARN + "0a1b2c3d-renewing"})

	want := []string{
		"arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/cabal-nlb/50dc6c495c0c9188",
		"arn:aws:cloudfront::123456789012:distribution/E2QWRUHAPOMQZL",
	}
	if !reflect.DeepEqual(facts["in_use_by"], want) {
		t.Errorf("in_use_by = %v, want %v", facts["in_use_by"], want)
	}
	if got := facts["not_after"].(time.Time); !got.Equal(time.Unix(1769817599, 0)) {
		t.Errorf("not_after = %v, want %v", got, time.Unix(1769817599, 0).UTC())
	}
}

func TestACMDescribeByDomainPrefersTheIssuedCertificateInUse(t *testing.T) {
	server := &recordedACM{}
	a, calls := fakeAWS(t, server)
	facts := mustRun(t, NewACMDescribe(a), Params{"domain": "imap.example.test"})

	if want := recordedARN + "0a1b2c3d-renewing"; facts["arn"] != want {
		t.Errorf("arn = %v, want the issued certificate in use, %s", facts["arn"], want)
	}
	// the certificate for mail.other.test is ruled out by its summary, without a call
	if described := server.describedARNs(); slices.Contains(described, recordedARN+"3d4e5f6a-other") {
		t.Errorf("described %v, which includes a certificate whose summary rules it out", described)
	}
	if got := calls.Calls(); testpeer.Count(got, "ACM") != 3 {
		t.Errorf("ACM calls: %v, want ListCertificates and two DescribeCertificate", got)
	}
}

func TestACMDescribeByDomainWithoutCoveringCertificateIsNotFound(t *testing.T) {
	a, _ := fakeAWS(t, &recordedACM{})
	_, err := runAction(t, NewACMDescribe(a), Params{"domain": "imap.elsewhere.test"})
	if reasonOf(err) != ReasonNotFound {
		t.Fatalf("err = %v, want not_found", err)
	}
}

func TestACMDescribeAsksForAnArnOrADomain(t *testing.T) {
	_, err := NewACMDescribe(NewAWS(AWSOptions{})).Request(Params{}, testEnv())
	if reasonOf(err) != ReasonInvalid || err.Error() != "arn or domain: one is required" {
		t.Fatalf("err = %v, want the invalid parameters named", err)
	}
}

func TestValidationRecordsComeFromTheRenewalWhenItNamesAny(t *testing.T) {
	record := func(name, value string) *acmtypes.ResourceRecord {
		return &acmtypes.ResourceRecord{Name: aws.String(name), Type: acmtypes.RecordTypeCname,
			Value: aws.String(value)}
	}
	option := func(domain string, rr *acmtypes.ResourceRecord) acmtypes.DomainValidation {
		return acmtypes.DomainValidation{DomainName: aws.String(domain), ResourceRecord: rr}
	}
	cert := &acmtypes.CertificateDetail{
		DomainValidationOptions: []acmtypes.DomainValidation{
			option("*.example.test", record("_old.example.test.", "_old.acm-validations.aws.")),
		},
		RenewalSummary: &acmtypes.RenewalSummary{
			RenewalStatus: acmtypes.RenewalStatusPendingValidation,
			DomainValidationOptions: []acmtypes.DomainValidation{
				option("*.example.test", record("_new.example.test.", "_new.acm-validations.aws.")),
				option("example.test", record("_NEW.Example.test", "_new.acm-validations.aws")),
			},
		},
	}
	want := []map[string]any{{"name": "_new.example.test.", "type": "CNAME", "value": "_new.acm-validations.aws."}}
	if got := validationRecords(cert); !reflect.DeepEqual(got, want) {
		t.Errorf("validation records = %v, want %v", got, want)
	}

	cert.RenewalSummary.DomainValidationOptions = []acmtypes.DomainValidation{option("*.example.test", nil)}
	want = []map[string]any{{"name": "_old.example.test.", "type": "CNAME", "value": "_old.acm-validations.aws."}}
	if got := validationRecords(cert); !reflect.DeepEqual(got, want) {
		t.Errorf("without records in the renewal: %v, want the certificate's %v", got, want)
	}
}

func TestACMDescribeAgainstMoto(t *testing.T) {
	a, calls, cfg := motoAWS(t)
	arn, records := testpeer.SeedCertificate(t, cfg, "*.example.test", "example.test")
	other, _ := testpeer.SeedCertificate(t, cfg, "mail.other.test")

	tests := []struct {
		name string
		p    Params
	}{
		{"by ARN", Params{"arn": arn}},
		{"by a host the wildcard covers", Params{"domain": "imap.example.test"}},
		{"by the apex, an alternative name", Params{"domain": "Example.Test."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			facts := mustRun(t, NewACMDescribe(a), tt.p)
			if facts["arn"] != arn {
				t.Errorf("arn = %v, want %s (not %s)", facts["arn"], arn, other)
			}
			// moto shares one record between the wildcard and its apex, as ACM does
			if len(records) != 1 {
				t.Fatalf("moto gave %d validation records for a wildcard and its apex, want 1", len(records))
			}
			want := []map[string]any{{"name": records[0].Name, "type": "CNAME", "value": records[0].Value}}
			if !reflect.DeepEqual(facts["validation_records"], want) {
				t.Errorf("validation_records = %v, want %v", facts["validation_records"], want)
			}
			// moto has no RenewalSummary and leaves InUseBy empty: AWS's answers are
			// covered by TestACMDescribeReadsRecordedRenewals
			if facts["renewal_status"] != "" || facts["in_use"] != false {
				t.Errorf("renewal_status %v, in_use %v: moto gained renewals or InUseBy; extend this test",
					facts["renewal_status"], facts["in_use"])
			}
		})
	}
	// moto's ListCertificates gives no alternative names, so each certificate is
	// described; AWS's summaries rule most out (see the recorded test above)
	if got := calls.Calls(); !slices.Contains(got, "ACM/ListCertificates") {
		t.Errorf("calls %v, want ListCertificates among them", got)
	}
}
