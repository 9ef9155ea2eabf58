package testpeer

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
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
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logstypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
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
		"AWS_ENDPOINT_URL_SSM":                       "",
		"AWS_ENDPOINT_URL_LAMBDA":                    "",
		"AWS_ENDPOINT_URL_CLOUDWATCH_LOGS":           "",
		"AWS_ENDPOINT_URL_ECS":                       "",
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

// UseLambdaSimple switches moto's Lambda to its simple mode, which runs no container:
// Invoke answers with the payload it was given, or with the results QueueLambdaResults
// queued. Call it before creating functions: functions created in the other mode are
// not seen in this one. The setting outlives resets; every test that needs it calls it.
func UseLambdaSimple(t testing.TB, endpoint string) {
	t.Helper()
	motoAPI(t, endpoint, "/moto-api/config", `{"lambda": {"use_docker": false}}`)
}

// QueueLambdaResults makes moto's simple Lambda answer the next invocations in the
// test's region with results, one each, in order.
func QueueLambdaResults(t testing.TB, endpoint string, results ...string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"results": results, "region": MotoRegion})
	if err != nil {
		t.Fatal(err)
	}
	motoAPI(t, endpoint, "/moto-api/static/lambda-simple/response", string(body))
}

func motoAPI(t testing.TB, endpoint, path, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s", path, resp.Status)
	}
}

// SeedLambdaFunction creates a function named name, with a role moto accepts and code
// that simple mode never runs, and returns its ARN. Call UseLambdaSimple first.
func SeedLambdaFunction(t testing.TB, cfg aws.Config, name string) string {
	t.Helper()
	role := seedLambdaRole(t, cfg, name+"-role")
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	w, err := zw.Create("handler.py")
	if err == nil {
		_, err = io.WriteString(w, "def handler(event, context):\n    return event\n")
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		t.Fatalf("zipping the code of %s: %v", name, err)
	}
	out, err := lambda.NewFromConfig(cfg).CreateFunction(t.Context(), &lambda.CreateFunctionInput{
		FunctionName: aws.String(name), Role: aws.String(role), Runtime: lambdatypes.RuntimePython312,
		Handler: aws.String("handler.handler"), Timeout: aws.Int32(300),
		Code: &lambdatypes.FunctionCode{ZipFile: zipped.Bytes()},
	})
	if err != nil {
		t.Fatalf("creating function %s: %v", name, err)
	}
	return aws.ToString(out.FunctionArn)
}

// seedLambdaRole creates an IAM role for a function through IAM's query protocol, which
// moto accepts unsigned, and returns its ARN.
func seedLambdaRole(t testing.TB, cfg aws.Config, name string) string {
	t.Helper()
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` +
		`"Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	form := url.Values{"Action": {"CreateRole"}, "Version": {"2010-05-08"}, "RoleName": {name},
		"AssumeRolePolicyDocument": {trust}}
	var out struct {
		Arn string `xml:"CreateRoleResult>Role>Arn"`
	}
	motoQuery(t, cfg, "iam", form, &out)
	if out.Arn == "" {
		t.Fatalf("creating role %s: moto returned no ARN", name)
	}
	return out.Arn
}

// motoQuery makes one call of an AWS query-protocol service, which moto accepts
// unsigned, and decodes its XML answer into out.
func motoQuery(t testing.TB, cfg aws.Config, service string, form url.Values, out any) {
	t.Helper()
	endpoint := strings.TrimSuffix(aws.ToString(cfg.BaseEndpoint), "/")
	if endpoint == "" {
		endpoint = strings.TrimSuffix(os.Getenv("AWS_ENDPOINT_URL"), "/")
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint+"/", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/"+cfg.Region+"/"+service+
		"/aws4_request")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", service, form.Get("Action"), err)
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %s %s", service, form.Get("Action"), resp.Status, b)
	}
	if err := xml.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("decoding %s %s: %v", service, form.Get("Action"), err)
	}
}

// SeedParameter stores value as a SecureString parameter, replacing any earlier value.
func SeedParameter(t testing.TB, cfg aws.Config, name, value string) {
	t.Helper()
	_, err := ssm.NewFromConfig(cfg).PutParameter(t.Context(), &ssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String(value), Type: ssmtypes.ParameterTypeSecureString,
		Overwrite: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("storing parameter %s: %v", name, err)
	}
}

// LogEvent is one event to seed in a log group.
type LogEvent struct {
	At      time.Time
	Message string
}

// SeedLogEvents creates a log group and a stream in it, unless they exist, and puts
// events into the stream.
func SeedLogEvents(t testing.TB, cfg aws.Config, group string, events ...LogEvent) {
	t.Helper()
	client := cloudwatchlogs.NewFromConfig(cfg)
	var exists *logstypes.ResourceAlreadyExistsException
	_, err := client.CreateLogGroup(t.Context(), &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)})
	if err != nil && !errors.As(err, &exists) {
		t.Fatalf("creating log group %s: %v", group, err)
	}
	stream := aws.String("seeded")
	_, err = client.CreateLogStream(t.Context(), &cloudwatchlogs.CreateLogStreamInput{
		LogGroupName: aws.String(group), LogStreamName: stream,
	})
	if err != nil && !errors.As(err, &exists) {
		t.Fatalf("creating a log stream in %s: %v", group, err)
	}
	if len(events) == 0 {
		return
	}
	sorted := slices.SortedFunc(slices.Values(events), func(a, b LogEvent) int { return a.At.Compare(b.At) })
	in := &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: stream}
	for _, e := range sorted {
		in.LogEvents = append(in.LogEvents, logstypes.InputLogEvent{
			Timestamp: aws.Int64(e.At.UnixMilli()), Message: aws.String(e.Message),
		})
	}
	if _, err := client.PutLogEvents(t.Context(), in); err != nil {
		t.Fatalf("putting %d events into %s: %v", len(events), group, err)
	}
}

// SeedECSServices creates a cluster and, in it, services of one task definition in
// bridge network mode, which needs no subnets. Their desired count is desired: moto
// runs no task, so a service is stable only when desired is 0.
func SeedECSServices(t testing.TB, cfg aws.Config, cluster string, desired int32, services ...string) {
	t.Helper()
	client := ecs.NewFromConfig(cfg)
	_, err := client.CreateCluster(t.Context(), &ecs.CreateClusterInput{ClusterName: aws.String(cluster)})
	if err != nil {
		t.Fatalf("creating cluster %s: %v", cluster, err)
	}
	td, err := client.RegisterTaskDefinition(t.Context(), &ecs.RegisterTaskDefinitionInput{
		Family: aws.String(cluster + "-mail"), NetworkMode: ecstypes.NetworkModeBridge,
		ContainerDefinitions: []ecstypes.ContainerDefinition{{
			Name: aws.String("mail"), Image: aws.String("example.test/mail:1"), Memory: aws.Int32(256),
		}},
	})
	if err != nil {
		t.Fatalf("registering a task definition in %s: %v", cluster, err)
	}
	for _, svc := range services {
		_, err := client.CreateService(t.Context(), &ecs.CreateServiceInput{
			Cluster: aws.String(cluster), ServiceName: aws.String(svc),
			TaskDefinition: td.TaskDefinition.TaskDefinitionArn, DesiredCount: aws.Int32(desired),
		})
		if err != nil {
			t.Fatalf("creating service %s in %s: %v", svc, cluster, err)
		}
	}
}

// Deployments returns the id of each service's primary deployment, by service name.
func Deployments(t testing.TB, cfg aws.Config, cluster string, services ...string) map[string]string {
	t.Helper()
	out, err := ecs.NewFromConfig(cfg).DescribeServices(t.Context(), &ecs.DescribeServicesInput{
		Cluster: aws.String(cluster), Services: services,
	})
	if err != nil {
		t.Fatalf("describing services in %s: %v", cluster, err)
	}
	ids := map[string]string{}
	for _, s := range out.Services {
		for _, d := range s.Deployments {
			if aws.ToString(d.Status) == "PRIMARY" {
				ids[aws.ToString(s.ServiceName)] = aws.ToString(d.Id)
			}
		}
	}
	return ids
}
