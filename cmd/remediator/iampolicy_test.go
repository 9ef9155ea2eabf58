package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/remediator/remediator/policies"
	"github.com/remediator/remediator/remediate/actions"
)

// cabalmailPacks are the shipped Cabalmail policy packs, relative to this package.
const cabalmailPacks = "../../policies/cabalmail-*.yaml"

// iamPolicyOf runs `remediator iam-policy` on a main configuration naming the policy
// files and decodes what it prints.
func iamPolicyOf(t *testing.T, policyFiles ...string) iamDocument {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "remediator.yml")
	var b strings.Builder
	b.WriteString("policy_files:\n")
	for _, f := range policyFiles {
		fmt.Fprintf(&b, "  - %q\n", absPath(t, f))
	}
	writeFile(t, cfg, b.String())

	code, stdout, stderr := runCommand(t, "iam-policy", "--config.file", cfg)
	if code != 0 {
		t.Fatalf("iam-policy exited %d: %s", code, stderr)
	}
	var doc iamDocument
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("iam-policy printed something other than a policy: %v\n%s", err, stdout)
	}
	return doc
}

func (d iamDocument) actions() []string {
	var out []string
	for _, st := range d.Statement {
		out = append(out, st.Action...)
	}
	slices.Sort(out)
	return out
}

// statementFor returns the statement that allows action.
func (d iamDocument) statementFor(t *testing.T, action string) iamStatement {
	t.Helper()
	for _, st := range d.Statement {
		if slices.Contains(st.Action, action) {
			return st
		}
	}
	t.Fatalf("no statement allows %s", action)
	return iamStatement{}
}

// TestIAMPolicyOfCabalmailPacks holds the policy printed for the shipped Cabalmail packs
// against what their steps' actions declare: every API action some used action calls,
// and none that only unused actions call.
func TestIAMPolicyOfCabalmailPacks(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(cabalmailPacks)
	if err != nil || len(files) == 0 {
		t.Fatalf("no Cabalmail pack matches %s (%v)", cabalmailPacks, err)
	}
	doc := iamPolicyOf(t, files...)

	reg := actions.Builtin(actions.Deps{})
	set, err := policies.Load(files, ".", reg)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, p := range set.Policies {
		for _, s := range p.Steps {
			used[s.Action] = true
		}
	}
	want := map[string]bool{}
	for name := range used {
		for _, a := range reg[name].Spec().IAM {
			want[a] = true
		}
	}
	if got, w := doc.actions(), slices.Sorted(maps.Keys(want)); !slices.Equal(got, w) {
		t.Errorf("printed actions\n  %v\nwant the union of the used actions' IAM\n  %v", got, w)
	}
	for _, name := range reg.Names() {
		if used[name] {
			continue
		}
		for _, a := range reg[name].Spec().IAM {
			if !want[a] && slices.Contains(doc.actions(), a) {
				t.Errorf("%s appears, but only %s calls it and no policy uses %s", a, name, name)
			}
		}
	}
	if doc.Version != iamPolicyVersion {
		t.Errorf("Version %q, want %q", doc.Version, iamPolicyVersion)
	}
	for _, st := range doc.Statement {
		if st.Effect != "Allow" || st.Sid == "" || len(st.Action) == 0 || st.Resource == nil {
			t.Errorf("incomplete statement %+v", st)
		}
	}
}

// TestIAMPolicyOfACMPack pins the ACM pack's policy: the API actions it calls, nothing
// that re-points a listener, and record changes limited to UPSERT.
func TestIAMPolicyOfACMPack(t *testing.T) {
	t.Parallel()
	doc := iamPolicyOf(t, "../../policies/cabalmail-acm.yaml")

	want := []string{
		"acm:DescribeCertificate", "acm:ListCertificates",
		"cloudfront:GetDistribution", "cloudfront:ListDistributions",
		"elasticloadbalancing:DescribeListenerCertificates", "elasticloadbalancing:DescribeListeners",
		"elasticloadbalancing:DescribeLoadBalancers",
		"route53:ChangeResourceRecordSets", "route53:GetChange", "route53:GetHostedZone",
		"route53:ListHostedZonesByName", "route53:ListResourceRecordSets",
	}
	if got := doc.actions(); !slices.Equal(got, want) {
		t.Errorf("actions\n  %v\nwant\n  %v", got, want)
	}
	change := doc.statementFor(t, "route53:ChangeResourceRecordSets")
	got, _ := json.Marshal(change.Condition)
	const upsertOnly = `{"ForAllValues:StringEquals":{"route53:ChangeResourceRecordSetsActions":["UPSERT"]}}`
	if string(got) != upsertOnly {
		t.Errorf("ChangeResourceRecordSets condition %s, want UPSERT only", got)
	}
	r := doc.statementFor(t, "route53:GetChange").Resource
	if fmt.Sprint(r) != "[arn:aws:route53:::change/*]" {
		t.Errorf("GetChange resource %v, want the changes only", r)
	}
}

// TestEnsureRecordsSendsOnlyUpserts backs the UPSERT condition: what
// route53.ensure_records sends never creates or deletes.
func TestEnsureRecordsSendsOnlyUpserts(t *testing.T) {
	t.Parallel()
	a := actions.NewRoute53EnsureRecords(actions.NewAWS(actions.AWSOptions{}))
	req, err := a.Request(actions.Params{
		"zone_id": "Z0123456789ABC",
		"records": []map[string]any{
			{"name": "_a.example.test.", "type": "CNAME", "value": "_b.acm-validations.aws."},
			{"name": "_c.example.test.", "type": "CNAME", "value": "_d.acm-validations.aws."},
		},
	}, actions.Env{RunID: "r", Policy: "p", Step: "s"})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(req.Input)
	var in struct {
		ChangeBatch struct{ Changes []struct{ Action string } }
	}
	if err := json.Unmarshal(body, &in); err != nil {
		t.Fatal(err)
	}
	if len(in.ChangeBatch.Changes) != 2 {
		t.Fatalf("%d changes in %s, want 2", len(in.ChangeBatch.Changes), body)
	}
	for _, c := range in.ChangeBatch.Changes {
		if c.Action != "UPSERT" {
			t.Errorf("change action %q, want UPSERT only", c.Action)
		}
	}
}

// fakeAction declares an action for policies to load; it never runs.
type fakeAction struct{ spec actions.Spec }

func (f fakeAction) Spec() actions.Spec { return f.spec }

func (f fakeAction) Request(actions.Params, actions.Env) (actions.Request, error) {
	return actions.Request{}, nil
}

func (f fakeAction) Run(context.Context, actions.Params, actions.Env) (actions.Facts, error) {
	return actions.Facts{}, nil
}

// fakeRegistry holds actions shaped like the AWS ones, with the parameters narrowing reads.
func fakeRegistry() actions.Registry {
	region := actions.Param{Name: "region", Type: actions.String}
	return actions.NewRegistry(
		fakeAction{actions.Spec{Name: "fn.invoke", Mutates: true, IAM: []string{"lambda:InvokeFunction"},
			Params: []actions.Param{{Name: "function", Type: actions.String, Required: true}, region}}},
		fakeAction{actions.Spec{Name: "param.read", IAM: []string{"ssm:GetParameter", "kms:Decrypt"},
			Params: []actions.Param{
				{Name: "name", Type: actions.String, Default: "/cabal/control_domain_ssl_cert"}, region}}},
		fakeAction{actions.Spec{Name: "svc.restart", Mutates: true,
			IAM: []string{"ecs:UpdateService", "ecs:DescribeServices"},
			Params: []actions.Param{
				{Name: "cluster", Type: actions.String, Required: true},
				{Name: "services", Type: actions.StringList}}}},
		fakeAction{actions.Spec{Name: "log.search", IAM: []string{"logs:FilterLogEvents"},
			Params: []actions.Param{{Name: "log_groups", Type: actions.StringList, Required: true}}}},
		fakeAction{actions.Spec{Name: "zone.write", Mutates: true,
			IAM:    []string{"route53:ChangeResourceRecordSets", "route53:ListHostedZonesByName"},
			Params: []actions.Param{{Name: "zone_id", Type: actions.String}}}},
		fakeAction{actions.Spec{Name: "cert.read", IAM: []string{"acm:DescribeCertificate"},
			Params: []actions.Param{{Name: "arn", Type: actions.String}}}},
	)
}

func TestIAMResourceNarrowing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		partition string
		steps     string
		action    string
		want      []string
	}{{
		name:   "names the Lambda function a step gives literally, with its versions and aliases",
		steps:  stepsYAML("fn.invoke", "function: cabal-certbot-renewal"),
		action: "lambda:InvokeFunction",
		want: []string{"arn:aws:lambda:*:*:function:cabal-certbot-renewal",
			"arn:aws:lambda:*:*:function:cabal-certbot-renewal:*"},
	}, {
		name:   "puts the step's literal region in the ARN",
		steps:  stepsYAML("fn.invoke", "function: renew", "region: eu-west-1"),
		action: "lambda:InvokeFunction",
		want: []string{"arn:aws:lambda:eu-west-1:*:function:renew",
			"arn:aws:lambda:eu-west-1:*:function:renew:*"},
	}, {
		name:   "keeps a function given by ARN as it is",
		steps:  stepsYAML("fn.invoke", "function: arn:aws:lambda:us-east-1:123456789012:function:renew"),
		action: "lambda:InvokeFunction",
		want:   []string{"arn:aws:lambda:us-east-1:123456789012:function:renew"},
	}, {
		name:   "grants any function when the step templates the name",
		steps:  stepsYAML("fn.invoke", `function: "{{ .Labels.function }}"`),
		action: "lambda:InvokeFunction",
		want:   []string{"*"},
	}, {
		name: "grants any function when one of two steps templates the name",
		steps: stepsYAML("fn.invoke", "function: renew") +
			moreSteps("fn.invoke", `function: "{{ .Labels.f }}"`),
		action: "lambda:InvokeFunction",
		want:   []string{"*"},
	}, {
		name:   "unions the functions of two steps",
		steps:  stepsYAML("fn.invoke", "function: a") + moreSteps("fn.invoke", "function: b"),
		action: "lambda:InvokeFunction",
		want: []string{"arn:aws:lambda:*:*:function:a", "arn:aws:lambda:*:*:function:a:*",
			"arn:aws:lambda:*:*:function:b", "arn:aws:lambda:*:*:function:b:*"},
	}, {
		name:   "names the SSM parameter from the action's default when the step leaves it out",
		steps:  stepsYAML("param.read"),
		action: "ssm:GetParameter",
		want:   []string{"arn:aws:ssm:*:*:parameter/cabal/control_domain_ssl_cert"},
	}, {
		name:      "writes ARNs in the partition asked for",
		partition: "aws-cn",
		steps:     stepsYAML("param.read", "name: cert"),
		action:    "ssm:GetParameter",
		want:      []string{"arn:aws-cn:ssm:*:*:parameter/cert"},
	}, {
		name:   "grants decryption on any key, SSM being the only way in",
		steps:  stepsYAML("param.read"),
		action: "kms:Decrypt",
		want:   []string{"*"},
	}, {
		name:   "names each ECS service of a literal cluster",
		steps:  stepsYAML("svc.restart", "cluster: cabal-mail", "services: [cabal-imap, cabal-smtp-out]"),
		action: "ecs:UpdateService",
		want: []string{"arn:aws:ecs:*:*:service/cabal-mail/cabal-imap",
			"arn:aws:ecs:*:*:service/cabal-mail/cabal-smtp-out"},
	}, {
		name:   "grants every service of a literal cluster when the services are an expression",
		steps:  stepsYAML("svc.restart", "cluster: cabal-mail", `services: "${ [labels.service] }"`),
		action: "ecs:DescribeServices",
		want:   []string{"arn:aws:ecs:*:*:service/cabal-mail/*"},
	}, {
		name: "names both log groups, and their streams",
		steps: stepsYAML("log.search",
			"log_groups: [/cabal/lambda/certbot-renewal, /aws/lambda/cabal-certbot-renewal]"),
		action: "logs:FilterLogEvents",
		want: []string{"arn:aws:logs:*:*:log-group:/aws/lambda/cabal-certbot-renewal",
			"arn:aws:logs:*:*:log-group:/aws/lambda/cabal-certbot-renewal:*",
			"arn:aws:logs:*:*:log-group:/cabal/lambda/certbot-renewal",
			"arn:aws:logs:*:*:log-group:/cabal/lambda/certbot-renewal:*"},
	}, {
		name:   "names a literal hosted zone, with or without /hostedzone/",
		steps:  stepsYAML("zone.write", "zone_id: /hostedzone/Z0123456789ABC"),
		action: "route53:ChangeResourceRecordSets",
		want:   []string{"arn:aws:route53:::hostedzone/Z0123456789ABC"},
	}, {
		name:   "leaves actions without resource-level permissions on any resource",
		steps:  stepsYAML("zone.write", "zone_id: Z0123456789ABC"),
		action: "route53:ListHostedZonesByName",
		want:   []string{"*"},
	}, {
		name:   "grants any certificate when the step finds it by name rather than ARN",
		steps:  stepsYAML("cert.read"),
		action: "acm:DescribeCertificate",
		want:   []string{"*"},
	}, {
		name:   "names a certificate given by ARN",
		steps:  stepsYAML("cert.read", "arn: arn:aws:acm:us-east-1:123456789012:certificate/abc"),
		action: "acm:DescribeCertificate",
		want:   []string{"arn:aws:acm:us-east-1:123456789012:certificate/abc"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ps, err := policies.Parse("test.yaml", []byte(tt.steps), fakeRegistry())
			if err != nil {
				t.Fatal(err)
			}
			partition := tt.partition
			if partition == "" {
				partition = "aws"
			}
			doc := iamDocumentOf(iamNeedsOf(ps, partition))
			st := doc.statementFor(t, tt.action)
			got, ok := st.Resource.([]string)
			if !ok {
				got = []string{fmt.Sprint(st.Resource)}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("resources\n  %v\nwant\n  %v", got, tt.want)
			}
		})
	}
}

// TestIAMConditions checks that a condition an action's calls always meet is kept only
// while every step that needs the API action asks for it.
func TestIAMConditions(t *testing.T) {
	t.Parallel()
	reg := actions.Builtin(actions.Deps{})
	for name, a := range fakeRegistry() {
		reg[name] = a
	}
	ensure := "action: route53.ensure_records\n        with: {zone_id: Z1, records: []}"
	other := "action: zone.write\n        with: {zone_id: Z1}"
	tests := []struct {
		name  string
		steps []string
		want  string
	}{
		{"keeps UPSERT only when route53.ensure_records alone changes records",
			[]string{ensure}, "UPSERT"},
		{"drops the condition when another action changes records too", []string{ensure, other}, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			b.WriteString("policies:\n  - name: p\n    match: ['alertname=\"A\"']\n    steps:\n")
			for i, s := range tt.steps {
				fmt.Fprintf(&b, "      - id: s%d\n        %s\n", i, s)
			}
			ps, err := policies.Parse("test.yaml", []byte(b.String()), reg)
			if err != nil {
				t.Fatal(err)
			}
			doc := iamDocumentOf(iamNeedsOf(ps, "aws"))
			st := doc.statementFor(t, "route53:ChangeResourceRecordSets")
			got := "none"
			if st.Condition != nil {
				verbs := st.Condition["ForAllValues:StringEquals"]["route53:ChangeResourceRecordSetsActions"]
				got = strings.Join(verbs, ",")
			}
			if got != tt.want {
				t.Errorf("condition %s, want %s", got, tt.want)
			}
		})
	}
}

// TestIAMPolicyOutputs checks both output formats and the empty policy of a pack that
// calls no AWS API.
func TestIAMPolicyOutputs(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runCommand(t, "iam-policy", "--config.file", exampleConfig)
	if code != 0 || !strings.Contains(stderr, "needs no IAM permissions") {
		t.Errorf("example config: exit %d, stderr %q; want 0 and a note that nothing is needed",
			code, stderr)
	}
	var doc iamDocument
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || len(doc.Statement) != 0 {
		t.Errorf("example config printed %q (%v), want a policy without statements", stdout, err)
	}

	cfg := filepath.Join(t.TempDir(), "remediator.yml")
	acm := absPath(t, "../../policies/cabalmail-acm.yaml")
	writeFile(t, cfg, fmt.Sprintf("policy_files: [%q]\n", acm))
	code, stdout, stderr = runCommand(t, "iam-policy", "--config.file", cfg, "--output", "external")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var external map[string]string
	if err := json.Unmarshal([]byte(stdout), &external); err != nil || len(external) != 1 {
		t.Fatalf("external output %q is not an object of one string (%v)", stdout, err)
	}
	if err := json.Unmarshal([]byte(external["policy"]), &doc); err != nil || len(doc.Statement) == 0 {
		t.Errorf("external output's policy %q does not decode to a policy (%v)", external["policy"], err)
	}
}

// stepsYAML is a policy file with one policy whose first step runs action with the given
// parameters.
func stepsYAML(action string, with ...string) string {
	const head = "policies:\n  - name: p\n    match: ['alertname=\"A\"']\n    steps:\n"
	return head + moreSteps(action, with...)
}

var stepCount int

// moreSteps is one more step for stepsYAML.
func moreSteps(action string, with ...string) string {
	stepCount++
	s := fmt.Sprintf("      - id: s%d\n        action: %s\n", stepCount, action)
	if len(with) > 0 {
		s += "        with:\n"
		for _, w := range with {
			s += "          " + w + "\n"
		}
	}
	return s
}

// TestECSExamplePolicyIsCurrent keeps the ECS example's task policy equal to what
// iam-policy prints for the packs it runs.
func TestECSExamplePolicyIsCurrent(t *testing.T) {
	t.Parallel()
	const input = "../../examples/ecs/iam-policy-input.yml"
	code, stdout, stderr := runCommand(t, "iam-policy", "--config.file", input)
	if code != 0 {
		t.Fatalf("iam-policy exited %d: %s", code, stderr)
	}
	got, err := os.ReadFile("../../examples/ecs/remediator-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != stdout {
		t.Error("examples/ecs/remediator-policy.json is stale: run go run ./cmd/remediator iam-policy " +
			"--config.file=examples/ecs/iam-policy-input.yml > examples/ecs/remediator-policy.json")
	}
}
