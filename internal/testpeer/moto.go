package testpeer

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	acmtypes "github.com/aws/aws-sdk-go-v2/service/acm/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/smithy-go/middleware"
)

// MotoEndpointEnv names the environment variable holding the URL of the moto server the
// tests share, such as http://127.0.0.1:5000. scripts/test.sh installs moto, starts it
// and sets the variable.
const MotoEndpointEnv = "REMEDIATOR_MOTO_ENDPOINT"

// MotoVersion is the moto release the tests are written against.
const MotoVersion = "5.2.5"

// MotoRegion is the region the tests give the AWS SDK.
const MotoRegion = "us-east-1"

// Moto returns the endpoint of the shared moto server, reserved for t and emptied of
// everything earlier tests left. Tests of every package share the one server, so Moto
// holds a lock across processes until t ends: tests that use it never run at the same
// time. It also points the AWS SDK's standard environment at moto for the length of t:
// AWS_ENDPOINT_URL, dummy static credentials and AWS_REGION. Because it sets the
// environment, tests that call it cannot be parallel.
//
// Without a reachable server the test is skipped, or failed when CI=true.
func Moto(t testing.TB) string {
	t.Helper()
	endpoint := strings.TrimSuffix(os.Getenv(MotoEndpointEnv), "/")
	if endpoint == "" {
		missingMoto(t, "$"+MotoEndpointEnv+" is not set")
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		t.Fatalf("%s=%s: not a URL", MotoEndpointEnv, endpoint)
	}

	if !reserveMoto(t) {
		lockMoto(t, u.Host)
	}
	if err := resetMoto(t, endpoint); err != nil {
		missingMoto(t, fmt.Sprintf("moto at %s does not answer: %v", endpoint, err))
	}
	setAWSEnv(t, endpoint)
	return endpoint
}

// missingMoto ends the test: failed in CI, skipped elsewhere, saying how to get moto.
func missingMoto(t testing.TB, why string) {
	t.Helper()
	hint := why + "; run scripts/test.sh, which installs moto " + MotoVersion +
		" and starts it, or start moto_server yourself and set " + MotoEndpointEnv
	if os.Getenv("CI") == "true" {
		t.Fatal(hint)
	}
	t.Skip(hint)
}

// motoHolder is the test of this process holding moto, if any.
var motoHolder struct {
	mu sync.Mutex
	t  testing.TB
}

// reserveMoto records t as the test of this process holding moto, and reports whether it
// held it already. A test that asks while another test of this process holds it would
// wait for itself: tests using moto cannot be parallel, so the other one is its parent.
func reserveMoto(t testing.TB) bool {
	t.Helper()
	motoHolder.mu.Lock()
	defer motoHolder.mu.Unlock()
	switch motoHolder.t {
	case t:
		return true
	case nil:
		motoHolder.t = t
		t.Cleanup(func() {
			motoHolder.mu.Lock()
			defer motoHolder.mu.Unlock()
			motoHolder.t = nil
		})
		return false
	}
	t.Fatalf("moto is held by %s: call Moto in the innermost test only", motoHolder.t.Name())
	return false
}

// lockMoto takes an exclusive lock on a file named after the server, released when t
// ends. flock locks belong to the open file, so the lock holds between the test
// processes of different packages and between tests of one process alike.
func lockMoto(t testing.TB, host string) {
	t.Helper()
	name := "remediator-moto-" + strings.NewReplacer(":", "-", "/", "-", "[", "", "]", "").Replace(host) + ".lock"
	f, err := os.OpenFile(filepath.Join(os.TempDir(), name), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("opening moto lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		t.Fatalf("locking moto: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	})
}

// resetMoto empties moto of every resource.
func resetMoto(t testing.TB, endpoint string) error {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint+"/moto-api/reset", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /moto-api/reset: %s", resp.Status)
	}
	return nil
}

// setAWSEnv points the SDK's standard configuration at moto for the length of t.
func setAWSEnv(t testing.TB, endpoint string) {
	t.Helper()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL":                           endpoint,
		"AWS_ACCESS_KEY_ID":                          "testing",
		"AWS_SECRET_ACCESS_KEY":                      "testing",
		"AWS_SESSION_TOKEN":                          "",
		"AWS_REGION":                                 MotoRegion,
		"AWS_PROFILE":                                "",
		"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS":        "",
		"AWS_ENDPOINT_URL_ACM":                       "",
		"AWS_ENDPOINT_URL_ROUTE_53":                  "",
		"AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2": "",
		"AWS_ENDPOINT_URL_CLOUDFRONT":                "",
	} {
		t.Setenv(k, v)
	}
}

// MotoConfig returns an AWS SDK configuration for seeding and inspecting moto; call it
// after Moto, whose environment it reads.
func MotoConfig(t testing.TB) aws.Config {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(t.Context(),
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient()))
	if err != nil {
		t.Fatalf("loading the AWS configuration for moto: %v", err)
	}
	return cfg
}

// Record is a DNS record of a single value.
type Record struct {
	Name, Type, Value string
	TTL               int64
}

// SeedCertificate requests an ACM certificate validated by DNS for domain and sans, and
// returns its ARN and the validation records moto made up for it. moto shares one record
// between a wildcard and its apex, as ACM does.
func SeedCertificate(t testing.TB, cfg aws.Config, domain string, sans ...string) (string, []Record) {
	t.Helper()
	client := acm.NewFromConfig(cfg)
	out, err := client.RequestCertificate(t.Context(), &acm.RequestCertificateInput{
		DomainName:              aws.String(domain),
		SubjectAlternativeNames: sans,
		ValidationMethod:        acmtypes.ValidationMethodDns,
	})
	if err != nil {
		t.Fatalf("requesting a certificate for %s: %v", domain, err)
	}
	in := &acm.DescribeCertificateInput{CertificateArn: out.CertificateArn}
	desc, err := client.DescribeCertificate(t.Context(), in)
	if err != nil {
		t.Fatalf("describing certificate %s: %v", aws.ToString(out.CertificateArn), err)
	}
	var records []Record
	for _, o := range desc.Certificate.DomainValidationOptions {
		rr := o.ResourceRecord
		if rr == nil {
			continue
		}
		r := Record{Name: aws.ToString(rr.Name), Type: string(rr.Type), Value: aws.ToString(rr.Value), TTL: 300}
		if !slices.Contains(records, r) {
			records = append(records, r)
		}
	}
	return aws.ToString(out.CertificateArn), records
}

// SeedZone creates a public hosted zone and returns its id, without /hostedzone/.
func SeedZone(t testing.TB, cfg aws.Config, name string) string {
	t.Helper()
	out, err := route53.NewFromConfig(cfg).CreateHostedZone(t.Context(), &route53.CreateHostedZoneInput{
		Name:            aws.String(name),
		CallerReference: aws.String(fmt.Sprintf("%s-%d", name, time.Now().UnixNano())),
	})
	if err != nil {
		t.Fatalf("creating hosted zone %s: %v", name, err)
	}
	return strings.TrimPrefix(aws.ToString(out.HostedZone.Id), "/hostedzone/")
}

// SeedRecords upserts records into a zone, 400 a change batch: Route 53 counts an
// upsert twice against its limit of 1,000 records a batch.
func SeedRecords(t testing.TB, cfg aws.Config, zoneID string, records ...Record) {
	t.Helper()
	client := route53.NewFromConfig(cfg)
	for chunk := range slices.Chunk(records, 400) {
		batch := &r53types.ChangeBatch{}
		for _, r := range chunk {
			batch.Changes = append(batch.Changes, r53types.Change{
				Action: r53types.ChangeActionUpsert,
				ResourceRecordSet: &r53types.ResourceRecordSet{
					Name: aws.String(r.Name), Type: r53types.RRType(r.Type), TTL: aws.Int64(max(r.TTL, 60)),
					ResourceRecords: []r53types.ResourceRecord{{Value: aws.String(r.Value)}},
				},
			})
		}
		_, err := client.ChangeResourceRecordSets(t.Context(), &route53.ChangeResourceRecordSetsInput{
			HostedZoneId: aws.String(zoneID), ChangeBatch: batch,
		})
		if err != nil {
			t.Fatalf("seeding %d records in zone %s: %v", len(chunk), zoneID, err)
		}
	}
}

// DeleteRecord removes one record from a zone.
func DeleteRecord(t testing.TB, cfg aws.Config, zoneID string, r Record) {
	t.Helper()
	_, err := route53.NewFromConfig(cfg).ChangeResourceRecordSets(t.Context(), &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(zoneID),
		ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{{
			Action: r53types.ChangeActionDelete,
			ResourceRecordSet: &r53types.ResourceRecordSet{
				Name: aws.String(r.Name), Type: r53types.RRType(r.Type), TTL: aws.Int64(max(r.TTL, 60)),
				ResourceRecords: []r53types.ResourceRecord{{Value: aws.String(r.Value)}},
			},
		}}},
	})
	if err != nil {
		t.Fatalf("deleting %s %s from zone %s: %v", r.Name, r.Type, zoneID, err)
	}
}

// ZoneRecords lists a whole zone, as tests do to compare it before and after a run.
func ZoneRecords(t testing.TB, cfg aws.Config, zoneID string) []r53types.ResourceRecordSet {
	t.Helper()
	client := route53.NewFromConfig(cfg)
	in := &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zoneID)}
	var out []r53types.ResourceRecordSet
	for {
		page, err := client.ListResourceRecordSets(t.Context(), in)
		if err != nil {
			t.Fatalf("listing zone %s: %v", zoneID, err)
		}
		out = append(out, page.ResourceRecordSets...)
		if !page.IsTruncated {
			return out
		}
		in.StartRecordName, in.StartRecordType = page.NextRecordName, page.NextRecordType
		in.StartRecordIdentifier = page.NextRecordIdentifier
	}
}

// SeedNetworkLoadBalancer creates a network load balancer in moto's default VPC with a
// TLS listener on port serving certARN, and returns the listener's ARN.
func SeedNetworkLoadBalancer(t testing.TB, cfg aws.Config, name string, port int32, certARN string) string {
	t.Helper()
	vpc, subnet := motoDefaultSubnet(t, cfg)
	client := elbv2.NewFromConfig(cfg)
	lb, err := client.CreateLoadBalancer(t.Context(), &elbv2.CreateLoadBalancerInput{
		Name: aws.String(name), Type: elbv2types.LoadBalancerTypeEnumNetwork, Subnets: []string{subnet},
	})
	if err != nil {
		t.Fatalf("creating load balancer %s: %v", name, err)
	}
	tg, err := client.CreateTargetGroup(t.Context(), &elbv2.CreateTargetGroupInput{
		Name: aws.String(name + "-tg"), Protocol: elbv2types.ProtocolEnumTcp, Port: aws.Int32(port),
		VpcId: aws.String(vpc), TargetType: elbv2types.TargetTypeEnumIp,
	})
	if err != nil {
		t.Fatalf("creating target group of %s: %v", name, err)
	}
	l, err := client.CreateListener(t.Context(), &elbv2.CreateListenerInput{
		LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn,
		Protocol:        elbv2types.ProtocolEnumTls,
		Port:            aws.Int32(port),
		Certificates:    []elbv2types.Certificate{{CertificateArn: aws.String(certARN)}},
		DefaultActions: []elbv2types.Action{{
			Type: elbv2types.ActionTypeEnumForward, TargetGroupArn: tg.TargetGroups[0].TargetGroupArn,
		}},
	})
	if err != nil {
		t.Fatalf("creating the listener of %s: %v", name, err)
	}
	return aws.ToString(l.Listeners[0].ListenerArn)
}

// motoDefaultSubnet returns a VPC and subnet of the defaults moto creates in every
// region. It speaks EC2's query protocol directly, which moto accepts unsigned.
func motoDefaultSubnet(t testing.TB, cfg aws.Config) (vpc, subnet string) {
	t.Helper()
	endpoint := strings.TrimSuffix(aws.ToString(cfg.BaseEndpoint), "/")
	if endpoint == "" {
		endpoint = strings.TrimSuffix(os.Getenv("AWS_ENDPOINT_URL"), "/")
	}
	form := url.Values{"Action": {"DescribeSubnets"}, "Version": {"2016-11-15"}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint+"/", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/"+cfg.Region+"/ec2/aws4_request")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("describing moto's subnets: %v", err)
	}
	defer resp.Body.Close()

	var out struct {
		Subnets []struct {
			SubnetID string `xml:"subnetId"`
			VpcID    string `xml:"vpcId"`
		} `xml:"subnetSet>item"`
	}
	if err := xml.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Subnets) == 0 {
		t.Fatalf("describing moto's subnets: %s, %v, %d subnets", resp.Status, err, len(out.Subnets))
	}
	return out.Subnets[0].VpcID, out.Subnets[0].SubnetID
}

// SeedDistribution creates a CloudFront distribution for alias serving certARN and
// returns its id.
func SeedDistribution(t testing.TB, cfg aws.Config, alias, certARN string) string {
	t.Helper()
	out, err := cloudfront.NewFromConfig(cfg).CreateDistribution(t.Context(), &cloudfront.CreateDistributionInput{
		DistributionConfig: &cftypes.DistributionConfig{
			CallerReference: aws.String(fmt.Sprintf("%s-%d", alias, time.Now().UnixNano())),
			Comment:         aws.String(""),
			Enabled:         aws.Bool(true),
			Aliases:         &cftypes.Aliases{Quantity: aws.Int32(1), Items: []string{alias}},
			Origins: &cftypes.Origins{Quantity: aws.Int32(1), Items: []cftypes.Origin{{
				Id: aws.String("origin"), DomainName: aws.String("origin." + alias),
				CustomOriginConfig: &cftypes.CustomOriginConfig{
					HTTPPort: aws.Int32(80), HTTPSPort: aws.Int32(443),
					OriginProtocolPolicy: cftypes.OriginProtocolPolicyHttpsOnly,
				},
			}}},
			DefaultCacheBehavior: &cftypes.DefaultCacheBehavior{
				TargetOriginId:       aws.String("origin"),
				ViewerProtocolPolicy: cftypes.ViewerProtocolPolicyRedirectToHttps,
				ForwardedValues: &cftypes.ForwardedValues{
					QueryString: aws.Bool(false),
					Cookies:     &cftypes.CookiePreference{Forward: cftypes.ItemSelectionNone},
				},
				MinTTL: aws.Int64(0),
			},
			ViewerCertificate: &cftypes.ViewerCertificate{
				ACMCertificateArn:      aws.String(certARN),
				SSLSupportMethod:       cftypes.SSLSupportMethodSniOnly,
				MinimumProtocolVersion: cftypes.MinimumProtocolVersionTLSv122021,
			},
		},
	})
	if err != nil {
		t.Fatalf("creating a distribution for %s: %v", alias, err)
	}
	return aws.ToString(out.Distribution.Id)
}

// AWSCalls records the AWS operations that clients make, through the SDK's own
// middleware: what was called, not what the code under test says it called.
type AWSCalls struct {
	mu       sync.Mutex
	calls    []Call // once per call
	attempts []Call // once per attempt, retries included
}

// Call is one recorded operation.
type Call struct {
	// Name is "Service/Operation" with the SDK's service id: "Route 53/ListResourceRecordSets".
	Name string
	// Input is the operation's input, such as *route53.ListResourceRecordSetsInput.
	Input any
}

// APIOption adds the recorder to a client's middleware stack; pass it in the APIOptions
// of the configuration or the client.
func (c *AWSCalls) APIOption(stack *middleware.Stack) error {
	err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("RemediatorTestCalls",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler,
		) (middleware.InitializeOutput, middleware.Metadata, error) {
			c.record(ctx, &c.calls, in.Parameters)
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
	if err != nil {
		return err
	}
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("RemediatorTestAttempts",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler,
		) (middleware.FinalizeOutput, middleware.Metadata, error) {
			c.record(ctx, &c.attempts, nil)
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}

func (c *AWSCalls) record(ctx context.Context, into *[]Call, input any) {
	name := awsmiddleware.GetServiceID(ctx) + "/" + awsmiddleware.GetOperationName(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	*into = append(*into, Call{Name: name, Input: input})
}

// Calls returns the names of the operations called, in order, and forgets them.
func (c *AWSCalls) Calls() []string { return names(c.Detailed()) }

// Detailed returns the operations called, in order, with their inputs, and forgets them.
func (c *AWSCalls) Detailed() []Call { return c.take(&c.calls) }

// Attempts returns the names of the attempts made, retries included, and forgets them.
func (c *AWSCalls) Attempts() []string { return names(c.take(&c.attempts)) }

func (c *AWSCalls) take(from *[]Call) []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := *from
	*from = nil
	return out
}

func names(calls []Call) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.Name
	}
	return out
}

// Count returns how many of calls are of service (its SDK id, such as "Route 53").
func Count(calls []string, service string) int {
	n := 0
	for _, c := range calls {
		if strings.HasPrefix(c, service+"/") {
			n++
		}
	}
	return n
}
