package actions

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/remediator/remediator/internal/testpeer"
)

// The tests of the AWS actions run against moto's server (internal/testpeer.Moto), which
// answers the real SDK calls, and against recorded AWS answers for what moto lacks. Where
// moto differs from AWS, the code follows AWS and the test says so:
//   - ACM: no RenewalSummary, InUseBy always empty, ListCertificates without
//     SubjectAlternativeNameSummaries, every validation record with the same random label
//     and value, and a requested certificate PENDING_VALIDATION for
//     MOTO_ACM_VALIDATION_WAIT seconds whatever DNS holds.
//   - Route 53: names come back with a trailing dot and wildcards unescaped; lookups are
//     case-sensitive (AWS keeps names in lower case and compares without case);
//     ListHostedZonesByName returns only zones of exactly the name asked.
//   - ELBv2: ModifyListener on a TLS listener is ignored; load balancer ARNs say app/ for
//     network load balancers.
//   - CloudFront: a viewer certificate with an ACM ARN still says
//     CloudFrontDefaultCertificate true and CertificateSource cloudfront.

// motoAWS points the AWS actions at the shared moto server, reset for t, and records
// every call they make. It returns a configuration for seeding moto too.
func motoAWS(t *testing.T) (*AWS, *testpeer.AWSCalls, aws.Config) {
	t.Helper()
	testpeer.Moto(t)
	calls := &testpeer.AWSCalls{}
	a := NewAWS(AWSOptions{APIOptions: []func(*middleware.Stack) error{calls.APIOption}})
	return a, calls, testpeer.MotoConfig(t)
}

// fakeAWS points the AWS actions at handler, which plays an AWS service, with the same
// dummy credentials moto gets.
func fakeAWS(t *testing.T, handler http.Handler) (*AWS, *testpeer.AWSCalls) {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", testpeer.MotoRegion)
	t.Setenv("AWS_PROFILE", "")
	calls := &testpeer.AWSCalls{}
	return NewAWS(AWSOptions{APIOptions: []func(*middleware.Stack) error{calls.APIOption}}), calls
}

// withDefaults applies the declared defaults of a's parameters, as policy loading does.
func withDefaults(a Action, p Params) Params {
	out := Params{}
	for _, decl := range a.Spec().Params {
		if decl.Default != nil {
			out[decl.Name] = decl.Default
		}
	}
	for k, v := range p {
		out[k] = v
	}
	return out
}

// runAction runs a with p, its defaults applied, in an Env naming a run.
func runAction(t *testing.T, a Action, p Params) (Facts, error) {
	t.Helper()
	p = withDefaults(a, p)
	if _, err := a.Request(p, testEnv()); err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	return a.Run(t.Context(), p, testEnv())
}

func mustRun(t *testing.T, a Action, p Params) Facts {
	t.Helper()
	f, err := runAction(t, a, p)
	if err != nil {
		t.Fatalf("%s: %v", a.Spec().Name, err)
	}
	return f
}

func testEnv() Env {
	return Env{RunID: "run-1", Policy: "test-policy", Step: "step"}
}

func reasonOf(err error) string {
	var se *StepError
	if errors.As(err, &se) {
		return se.Reason
	}
	return ""
}

func TestAWSReasonClassifiesErrors(t *testing.T) {
	apiErr := func(code string, fault smithy.ErrorFault) error {
		return &smithy.OperationError{ServiceID: "Route 53", OperationName: "ListResourceRecordSets",
			Err: &smithy.GenericAPIError{Code: code, Message: "m", Fault: fault}}
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"throttling is throttled", apiErr("Throttling", smithy.FaultClient), ReasonThrottled},
		{"route 53's prior request not complete is throttled", apiErr("PriorRequestNotComplete", smithy.FaultClient),
			ReasonThrottled},
		{"access denied is denied", apiErr("AccessDeniedException", smithy.FaultClient), ReasonDenied},
		{"an unknown client token is denied", apiErr("UnrecognizedClientException", smithy.FaultClient), ReasonDenied},
		{"a missing hosted zone is not found", apiErr("NoSuchHostedZone", smithy.FaultClient), ReasonNotFound},
		{"any code ending in NotFound is not found", apiErr("TargetGroupNotFound", smithy.FaultClient), ReasonNotFound},
		{"an invalid change batch is invalid", apiErr("InvalidChangeBatch", smithy.FaultClient), ReasonInvalid},
		{"a validation error is invalid", apiErr("ValidationException", smithy.FaultClient), ReasonInvalid},
		{"an unknown server fault is unavailable", apiErr("SomethingBroke", smithy.FaultServer), ReasonUnavailable},
		{"an unknown client fault failed", apiErr("SomethingOdd", smithy.FaultClient), ReasonFailed},
		{"a connection that failed is unavailable",
			&smithyhttp.RequestSendError{Err: errors.New("connection refused")}, ReasonUnavailable},
		{"a deadline is a timeout", fmt.Errorf("calling: %w", context.DeadlineExceeded), ReasonTimeout},
		{"a cancelled call failed", fmt.Errorf("calling: %w", context.Canceled), ReasonFailed},
		{"anything else failed", errors.New("odd"), ReasonFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := awsError("doing it", tt.err)
			if got := reasonOf(err); got != tt.want {
				t.Errorf("reason of %v = %q, want %q", tt.err, got, tt.want)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("%v does not wrap %v", err, tt.err)
			}
		})
	}
}

func TestDNSNamesCompareWithoutCaseOrTrailingDot(t *testing.T) {
	tests := []struct {
		name, a, b string
		want       bool
	}{
		{"a trailing dot does not matter", "_abc.Example.test.", "_abc.example.test", true},
		{"route 53's escaped wildcard is the wildcard", `\052.example.test.`, "*.example.test", true},
		{"another label differs", "_abd.example.test", "_abc.example.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := normalizeDNSName(tt.a) == normalizeDNSName(tt.b); got != tt.want {
				t.Errorf("%q == %q: %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestCertificateNamesCoverHosts(t *testing.T) {
	tests := []struct {
		name, cert, host string
		want             bool
	}{
		{"a wildcard covers one label", "*.example.test", "imap.example.test", true},
		{"a wildcard does not cover its apex", "*.example.test", "example.test", false},
		{"a wildcard does not cover two labels", "*.example.test", "a.imap.example.test", false},
		{"a name covers itself whatever the case", "Example.Test.", "example.test", true},
		{"a name does not cover another", "mail.example.test", "imap.example.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nameCovers(tt.cert, tt.host); got != tt.want {
				t.Errorf("nameCovers(%q, %q) = %v, want %v", tt.cert, tt.host, got, tt.want)
			}
		})
	}
}

func TestAWSConfigurationLoadsOnlyWhenAnAWSStepRuns(t *testing.T) {
	// a shared config file that cannot be parsed makes any load fail
	broken := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(broken, []byte("[profile broken\nregion = "), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", broken)
	t.Setenv("AWS_PROFILE", "broken")

	reg := Builtin(Deps{})
	for _, name := range reg.Names() {
		spec := reg[name].Spec()
		if strings.Contains(name, ".") && !strings.HasPrefix(name, "tls.") && len(spec.IAM) == 0 {
			t.Errorf("%s lists no IAM permissions", name)
		}
	}
	req, err := reg["acm.describe"].Request(Params{"domain": "imap.example.test"}, testEnv())
	if err != nil || req.Service != "acm" {
		t.Fatalf("Request without loading the AWS configuration: %+v, %v", req, err)
	}

	_, err = reg["acm.describe"].Run(t.Context(), Params{"domain": "imap.example.test"}, testEnv())
	if reasonOf(err) != ReasonInvalid || !strings.Contains(err.Error(), "loading AWS configuration") {
		t.Fatalf("Run with a broken AWS configuration: %v, want an invalid configuration", err)
	}
}

// awsErrorXML answers an AWS query or REST-XML call with an error, as Route 53 and ELBv2
// do.
func awsErrorXML(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0"?>
<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type>`+
		`<Code>%s</Code><Message>rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>`, code)
}

// requestLog counts the requests a fake AWS service receives, by path and method.
type requestLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *requestLog) requests() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen)
}

func (l *requestLog) add(r *http.Request) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, r.Method+" "+r.URL.Path)
	return len(l.seen)
}

// FuzzNormalizeDNSName feeds names as AWS answers could spell them, escapes included.
func FuzzNormalizeDNSName(f *testing.F) {
	for _, s := range []string{"_a.Example.test.", `\052.example.test.`, `\`, `\0`, `\777.x`, "*.", ".", ""} {
		f.Add(s, "imap.example.test")
	}
	f.Fuzz(func(t *testing.T, name, host string) {
		n := normalizeDNSName(name)
		if strings.ToLower(n) != n {
			t.Errorf("normalizeDNSName(%q) = %q, not lower case", name, n)
		}
		ascii := !strings.ContainsFunc(name, func(r rune) bool { return r > 127 })
		if ascii && nameCovers(name, host) != nameCovers(strings.ToUpper(name), host) {
			t.Errorf("nameCovers(%q, %q) depends on case", name, host)
		}
	})
}
