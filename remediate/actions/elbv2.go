package actions

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// NewELBv2ListenerCertificate returns the elbv2.listener_certificate action, which reports
// the certificate a load balancer listener serves and whether it is the expected one.
func NewELBv2ListenerCertificate(a *AWS) Action { return &listenerCertificate{aws: a} }

type listenerCertificate struct{ aws *AWS }

// Spec declares elbv2.listener_certificate.
func (l *listenerCertificate) Spec() Spec {
	return Spec{
		Name: "elbv2.listener_certificate",
		Doc: "Reports the default certificate of a TLS or HTTPS listener of a network or " +
			"application load balancer, given by ARN or by load balancer name and port, and " +
			"whether it is the expected certificate: a listener pinned to an older ARN keeps " +
			"serving the old certificate whatever ACM renews. Read-only. IAM: " +
			"elasticloadbalancing:DescribeLoadBalancers is needed only with load_balancer.",
		Params: []Param{
			{Name: "listener_arn", Type: String,
				Doc: "The listener's ARN. Either listener_arn, or load_balancer and port, is required."},
			{Name: "load_balancer", Type: String, Doc: "The load balancer's name, such as cabal-nlb."},
			{Name: "port", Type: Int, Doc: "The listener's port, such as 993."},
			{Name: "expected_arn", Type: String, Required: true,
				Doc: "The ARN of the certificate the listener should serve, such as acm.describe's arn."},
			regionParam(),
		},
		Facts: []Fact{
			{Name: "listener_arn", Type: String, Doc: "The listener's ARN."},
			{Name: "load_balancer_arn", Type: String, Doc: "The load balancer's ARN."},
			{Name: "protocol", Type: String, Doc: "The listener's protocol: TLS, HTTPS, ..."},
			{Name: "serving_arn", Type: String,
				Doc: "The ARN of the listener's default certificate; empty when it has none."},
			{Name: "certificate_arns", Type: StringList,
				Doc: "Every certificate of the listener, the default first, then those chosen by SNI."},
			{Name: "current", Type: Bool, Doc: "Whether serving_arn is expected_arn."},
			{Name: "listed", Type: Bool,
				Doc: "Whether expected_arn is among certificate_arns, as the default or for SNI."},
		},
		// DescribeLoadBalancers is called only to find the listener by load balancer name
		IAM: []string{"elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeListenerCertificates",
			"elasticloadbalancing:DescribeLoadBalancers"},
	}
}

// listenerTarget is which listener a step asks for.
type listenerTarget struct {
	listenerARN  string
	loadBalancer string
	port         int64
	expectedARN  string
	region       string
}

func parseListenerTarget(p Params) (listenerTarget, error) {
	t := listenerTarget{
		listenerARN:  strings.TrimSpace(p.String("listener_arn")),
		loadBalancer: strings.TrimSpace(p.String("load_balancer")),
		port:         p.Int("port"),
		expectedARN:  strings.TrimSpace(p.String("expected_arn")),
		region:       p.String("region"),
	}
	switch {
	case t.listenerARN == "" && (t.loadBalancer == "" || t.port == 0):
		return listenerTarget{}, Invalid("listener_arn, or load_balancer and port: required")
	case t.port < 0 || t.port > 65535:
		return listenerTarget{}, Invalid("port %d: must be from 1 to 65535", t.port)
	case t.expectedARN == "":
		return listenerTarget{}, Invalid("expected_arn: required")
	}
	return t, nil
}

// Request describes the lookups.
func (l *listenerCertificate) Request(p Params, _ Env) (Request, error) {
	t, err := parseListenerTarget(p)
	if err != nil {
		return Request{}, err
	}
	in := map[string]any{"ExpectedCertificateArn": t.expectedARN}
	if t.listenerARN != "" {
		in["ListenerArns"] = []string{t.listenerARN}
	} else {
		in["LoadBalancerName"], in["Port"] = t.loadBalancer, t.port
	}
	return Request{Service: "elasticloadbalancing", Operation: "DescribeListeners+DescribeListenerCertificates",
		Input: withRegion(in, t.region)}, nil
}

// Run finds the listener and compares its certificates with the expected one.
func (l *listenerCertificate) Run(ctx context.Context, p Params, _ Env) (Facts, error) {
	t, err := parseListenerTarget(p)
	if err != nil {
		return nil, err
	}
	cfg, err := l.aws.regionalConfig(ctx, t.region)
	if err != nil {
		return nil, err
	}
	client := elbv2.NewFromConfig(cfg)

	listener, err := findListener(ctx, client, t)
	if err != nil {
		return nil, err
	}
	arns, err := listenerCertificateARNs(ctx, client, listener)
	if err != nil {
		return nil, err
	}

	serving := defaultCertificateARN(listener)
	return Facts{
		"listener_arn":      aws.ToString(listener.ListenerArn),
		"load_balancer_arn": aws.ToString(listener.LoadBalancerArn),
		"protocol":          string(listener.Protocol),
		"serving_arn":       serving,
		"certificate_arns":  arns,
		"current":           serving == t.expectedARN,
		"listed":            slices.Contains(arns, t.expectedARN),
	}, nil
}

func findListener(ctx context.Context, client *elbv2.Client, t listenerTarget) (elbv2types.Listener, error) {
	if t.listenerARN != "" {
		out, err := client.DescribeListeners(ctx, &elbv2.DescribeListenersInput{ListenerArns: []string{t.listenerARN}})
		if err != nil {
			return elbv2types.Listener{}, awsError("describing listener "+t.listenerARN, err)
		}
		if len(out.Listeners) == 0 {
			return elbv2types.Listener{}, &StepError{Reason: ReasonNotFound,
				Err: fmt.Errorf("describing listener %s: not found", t.listenerARN)}
		}
		return out.Listeners[0], nil
	}

	lbARN, err := loadBalancerARN(ctx, client, t.loadBalancer)
	if err != nil {
		return elbv2types.Listener{}, err
	}
	return listenerOnPort(ctx, client, lbARN, t)
}

func loadBalancerARN(ctx context.Context, client *elbv2.Client, name string) (string, error) {
	out, err := client.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{Names: []string{name}})
	if err != nil {
		return "", awsError("describing load balancer "+name, err)
	}
	if len(out.LoadBalancers) == 0 {
		return "", &StepError{Reason: ReasonNotFound, Err: fmt.Errorf("describing load balancer %s: not found", name)}
	}
	return aws.ToString(out.LoadBalancers[0].LoadBalancerArn), nil
}

func listenerOnPort(ctx context.Context, client *elbv2.Client, lbARN string, t listenerTarget,
) (elbv2types.Listener, error) {
	in := &elbv2.DescribeListenersInput{LoadBalancerArn: aws.String(lbARN)}
	pages := elbv2.NewDescribeListenersPaginator(client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return elbv2types.Listener{}, awsError("describing listeners of "+t.loadBalancer, err)
		}
		for _, l := range page.Listeners {
			if int64(aws.ToInt32(l.Port)) == t.port {
				return l, nil
			}
		}
	}
	return elbv2types.Listener{}, &StepError{Reason: ReasonNotFound,
		Err: fmt.Errorf("finding the listener of %s on port %d: none", t.loadBalancer, t.port)}
}

// defaultCertificateARN returns the ARN of the listener's default certificate.
// DescribeListeners lists only the default one.
func defaultCertificateARN(l elbv2types.Listener) string {
	for _, c := range l.Certificates {
		if arn := aws.ToString(c.CertificateArn); arn != "" {
			return arn
		}
	}
	return ""
}

// listenerCertificateARNs lists every certificate of the listener, the default first.
func listenerCertificateARNs(ctx context.Context, client *elbv2.Client, l elbv2types.Listener) ([]string, error) {
	arns := []string{}
	if d := defaultCertificateARN(l); d != "" {
		arns = append(arns, d)
	}
	in := &elbv2.DescribeListenerCertificatesInput{ListenerArn: l.ListenerArn}
	for {
		out, err := client.DescribeListenerCertificates(ctx, in)
		if err != nil {
			return nil, awsError("describing certificates of listener "+aws.ToString(l.ListenerArn), err)
		}
		for _, c := range out.Certificates {
			if arn := aws.ToString(c.CertificateArn); arn != "" && !slices.Contains(arns, arn) {
				arns = append(arns, arn)
			}
		}
		if aws.ToString(out.NextMarker) == "" {
			return arns, nil
		}
		in.Marker = out.NextMarker
	}
}

// NewELBv2SetListenerCertificate returns the elbv2.set_listener_certificate action, which
// makes a certificate a listener's default.
func NewELBv2SetListenerCertificate(a *AWS) Action { return &setListenerCertificate{aws: a} }

type setListenerCertificate struct{ aws *AWS }

// Spec declares elbv2.set_listener_certificate.
func (s *setListenerCertificate) Spec() Spec {
	return Spec{
		Name:    "elbv2.set_listener_certificate",
		Mutates: true,
		Doc: "Makes a certificate the default certificate of a TLS or HTTPS listener " +
			"(ModifyListener), so that a listener pinned to an old ARN serves the current one. " +
			"It runs only where a policy names it; the Cabalmail pack escalates instead. The " +
			"call is made once: it is not retried, even on throttling.",
		Params: []Param{
			{Name: "listener_arn", Type: String, Required: true,
				Doc: "The listener's ARN, such as the listener_arn of elbv2.listener_certificate."},
			{Name: "certificate_arn", Type: String, Required: true, Doc: "The certificate to serve."},
			regionParam(),
		},
		Facts: []Fact{
			{Name: "serving_arn", Type: String, Doc: "The listener's default certificate after the change."},
		},
		IAM: []string{"elasticloadbalancing:ModifyListener"},
	}
}

func (s *setListenerCertificate) input(p Params) (*elbv2.ModifyListenerInput, error) {
	listener, cert := strings.TrimSpace(p.String("listener_arn")), strings.TrimSpace(p.String("certificate_arn"))
	if listener == "" || cert == "" {
		return nil, Invalid("listener_arn and certificate_arn: required")
	}
	return &elbv2.ModifyListenerInput{
		ListenerArn:  aws.String(listener),
		Certificates: []elbv2types.Certificate{{CertificateArn: aws.String(cert)}},
	}, nil
}

// Request returns the exact ModifyListener input.
func (s *setListenerCertificate) Request(p Params, _ Env) (Request, error) {
	in, err := s.input(p)
	if err != nil {
		return Request{}, err
	}
	return Request{Service: "elasticloadbalancing", Operation: "ModifyListener", Input: withRegion(map[string]any{
		"ListenerArn":  aws.ToString(in.ListenerArn),
		"Certificates": []map[string]string{{"CertificateArn": aws.ToString(in.Certificates[0].CertificateArn)}},
	}, p.String("region"))}, nil
}

// Run modifies the listener once.
func (s *setListenerCertificate) Run(ctx context.Context, p Params, _ Env) (Facts, error) {
	in, err := s.input(p)
	if err != nil {
		return nil, err
	}
	cfg, err := s.aws.regionalConfig(ctx, p.String("region"))
	if err != nil {
		return nil, err
	}
	client := elbv2.NewFromConfig(cfg)

	out, err := client.ModifyListener(ctx, in, func(o *elbv2.Options) { o.Retryer = singleShot(o.Retryer) })
	if err != nil {
		return nil, awsError("modifying listener "+aws.ToString(in.ListenerArn), err)
	}
	serving := ""
	if len(out.Listeners) > 0 {
		serving = defaultCertificateARN(out.Listeners[0])
	}
	return Facts{"serving_arn": serving}, nil
}
