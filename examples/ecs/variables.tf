variable "name" {
  description = "Name of the service, its task family, roles, log group and file system."
  type        = string
  default     = "remediator"
}

variable "image" {
  description = "The remediator image, such as ghcr.io/remediator/remediator:v0.1.0 or a copy in ECR."
  type        = string
}

variable "cluster_arn" {
  description = "The ECS cluster to run in (Cabalmail: the ARN of cabal-mail)."
  type        = string
}

variable "vpc_id" {
  description = "The VPC of the cluster."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the task and the file system's mount targets; they need a route to the AWS APIs (NAT or VPC endpoints)."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups allowed to reach port 9795: Alertmanager's (the webhook) and Prometheus's (/metrics)."
  type        = list(string)
}

variable "service_discovery_namespace_id" {
  description = "A Cloud Map private DNS namespace; Alertmanager reaches the task as <name>.<namespace>:9795."
  type        = string
}

variable "task_policy_file" {
  description = "The IAM policy of the task role, as `remediator iam-policy --config.file=...` printed it for the same policies as remediator_config."
  type        = string
  default     = "remediator-policy.json"
}

variable "webhook_token_secret_arn" {
  description = "A Secrets Manager secret or an SSM SecureString parameter holding the bearer token Alertmanager sends."
  type        = string
}

variable "mode" {
  description = "dry-run (plans mutating steps, runs none) or live."
  type        = string
  default     = "dry-run"

  validation {
    condition     = contains(["dry-run", "live"], var.mode)
    error_message = "The mode must be dry-run or live."
  }
}

variable "policy_packs" {
  description = "Policy packs shipped in the image, by file name without .yaml."
  type        = list(string)
  default     = ["cabalmail-acm", "cabalmail-letsencrypt"]
}

variable "alertmanager_url" {
  description = "Alertmanager's base URL, where escalations go, such as http://alertmanager.cabal.internal:9093."
  type        = string
}

variable "region" {
  description = "The region of the task and its log group."
  type        = string
}

variable "log_retention_days" {
  description = "How long remediator's own logs are kept. The audit log lives on the file system."
  type        = number
  default     = 90
}
