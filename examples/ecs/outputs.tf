output "task_role_arn" {
  description = "The role remediator's AWS calls are made as."
  value       = aws_iam_role.task.arn
}

output "webhook_url_path" {
  description = "The path of the webhook on <name>.<Cloud Map namespace>:9795, for Alertmanager's webhook_configs."
  value       = "/webhook"
}

output "config" {
  description = "The main configuration the task runs; `remediator check` it, and `remediator iam-policy` it into task_policy_file."
  value       = local.config
}
