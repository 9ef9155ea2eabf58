package actions

// Deps are what the built-in actions need from outside.
type Deps struct {
	// Alertmanager receives escalations.
	Alertmanager *Alertmanager
	// AWS loads the AWS configuration of the AWS actions on their first call; nil means
	// the environment's defaults (NewAWS(AWSOptions{})).
	AWS *AWS
}

// Builtin returns the registry of every action remediator ships.
func Builtin(d Deps) Registry {
	if d.AWS == nil {
		d.AWS = NewAWS(AWSOptions{})
	}
	return NewRegistry(
		NewTLSProbe(),
		NewEscalate(d.Alertmanager),
		NewACMDescribe(d.AWS),
		NewRoute53DiffRecords(d.AWS),
		NewRoute53EnsureRecords(d.AWS),
		NewELBv2ListenerCertificate(d.AWS),
		NewELBv2SetListenerCertificate(d.AWS),
		NewCloudFrontViewerCertificate(d.AWS),
		NewTLSWaitRenewed(),
		NewSSMCertificate(d.AWS),
		NewLambdaInvoke(d.AWS),
		NewLogsSearch(d.AWS),
		NewECSForceNewDeployment(d.AWS),
	)
}
