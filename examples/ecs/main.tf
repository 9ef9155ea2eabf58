# remediator on ECS Fargate, for installations that, like Cabalmail, run on ECS.
#
# One task, never two: the state store on the file system is held by one process at a
# time, so a deployment stops the old task before it starts the new one. The task role
# gets exactly the policy `remediator iam-policy` printed for the configured packs.
#
# The image carries the policy packs; the configuration is rendered here and written into
# a task volume by a short-lived "config" container, together with the webhook token that
# ECS reads from Secrets Manager or SSM. remediator reads both as files.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40"
    }
  }
}

locals {
  config = templatefile("${path.module}/remediator.yml.tftpl", {
    mode             = var.mode
    policy_packs     = var.policy_packs
    alertmanager_url = var.alertmanager_url
  })
  token_in_secrets_manager = strcontains(var.webhook_token_secret_arn, ":secretsmanager:")
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# The task role: what remediator's policies call, and nothing else.
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "remediator" {
  name   = "remediator-policies"
  role   = aws_iam_role.task.id
  policy = file("${path.module}/${var.task_policy_file}")
}

# Mounting the state store's access point, with IAM authorization.
data "aws_iam_policy_document" "storage" {
  statement {
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.state.arn]
    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [aws_efs_access_point.state.arn]
    }
  }
}

resource "aws_iam_role_policy" "storage" {
  name   = "remediator-storage"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.storage.json
}

# The execution role: pulling the image, writing logs, reading the webhook token.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "token" {
  statement {
    actions   = local.token_in_secrets_manager ? ["secretsmanager:GetSecretValue"] : ["ssm:GetParameters"]
    resources = [var.webhook_token_secret_arn]
  }
}

resource "aws_iam_role_policy" "token" {
  name   = "remediator-webhook-token"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.token.json
}

resource "aws_cloudwatch_log_group" "remediator" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
}

# The state store, the audit log and the guards: encrypted, owned by the image's user.
resource "aws_efs_file_system" "state" {
  encrypted        = true
  performance_mode = "generalPurpose"
  tags             = { Name = "${var.name}-state" }
}

resource "aws_efs_access_point" "state" {
  file_system_id = aws_efs_file_system.state.id
  posix_user {
    uid = 65532
    gid = 65532
  }
  root_directory {
    path = "/remediator"
    creation_info {
      owner_uid   = 65532
      owner_gid   = 65532
      permissions = "0700"
    }
  }
}

resource "aws_efs_backup_policy" "state" {
  file_system_id = aws_efs_file_system.state.id
  backup_policy {
    status = "ENABLED"
  }
}

resource "aws_security_group" "task" {
  name        = "${var.name}-task"
  description = "remediator: the webhook and metrics in, AWS APIs and probes out"
  vpc_id      = var.vpc_id

  ingress {
    description     = "webhook, plan, admin and metrics"
    from_port       = 9795
    to_port         = 9795
    protocol        = "tcp"
    security_groups = var.client_security_group_ids
  }

  # one-off tasks of the same definition (remediator pause, resume) reach the service
  ingress {
    description = "admin commands from one-off tasks"
    from_port   = 9795
    to_port     = 9795
    protocol    = "tcp"
    self        = true
  }

  # AWS APIs, TLS probes of the alerting endpoints, Alertmanager, DNS
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_security_group" "storage" {
  name        = "${var.name}-storage"
  description = "remediator's state store: NFS from the task only"
  vpc_id      = var.vpc_id

  ingress {
    from_port       = 2049
    to_port         = 2049
    protocol        = "tcp"
    security_groups = [aws_security_group.task.id]
  }
}

resource "aws_efs_mount_target" "state" {
  for_each        = toset(var.subnet_ids)
  file_system_id  = aws_efs_file_system.state.id
  subnet_id       = each.value
  security_groups = [aws_security_group.storage.id]
}

resource "aws_ecs_task_definition" "remediator" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  # written by the config container, read by remediator
  volume {
    name = "config"
  }

  volume {
    name = "state"
    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.state.id
      transit_encryption = "ENABLED"
      authorization_config {
        access_point_id = aws_efs_access_point.state.id
        iam             = "ENABLED"
      }
    }
  }

  container_definitions = jsonencode([
    {
      name      = "config"
      image     = "public.ecr.aws/docker/library/busybox:1.37"
      essential = false
      # secrets arrive as environment variables; remediator reads files
      command = [
        "sh", "-c",
        join(" && ", [
          "umask 077",
          "printf '%s' \"$REMEDIATOR_CONFIG\" > /config/remediator.yml",
          "printf '%s' \"$WEBHOOK_TOKEN\" > /config/webhook-token",
          "chown 65532:65532 /config/remediator.yml /config/webhook-token",
        ]),
      ]
      environment = [{ name = "REMEDIATOR_CONFIG", value = local.config }]
      secrets     = [{ name = "WEBHOOK_TOKEN", valueFrom = var.webhook_token_secret_arn }]
      mountPoints = [{ sourceVolume = "config", containerPath = "/config" }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.remediator.name
          awslogs-region        = var.region
          awslogs-stream-prefix = "config"
        }
      }
    },
    {
      name                   = "remediator"
      image                  = var.image
      essential              = true
      user                   = "65532:65532"
      readonlyRootFilesystem = true
      command = [
        "serve",
        "--config.file=/etc/remediator/config/remediator.yml",
        "--storage.path=/var/lib/remediator",
      ]
      dependsOn    = [{ containerName = "config", condition = "SUCCESS" }]
      portMappings = [{ name = "http", containerPort = 9795, protocol = "tcp" }]
      environment  = [{ name = "AWS_REGION", value = var.region }]
      mountPoints = [
        { sourceVolume = "config", containerPath = "/etc/remediator/config", readOnly = true },
        { sourceVolume = "state", containerPath = "/var/lib/remediator" },
      ]
      linuxParameters = { capabilities = { drop = ["ALL"] } }
      # the image has no shell: the binary checks its own /healthz
      healthCheck = {
        command     = ["CMD", "/usr/local/bin/remediator", "healthcheck", "--alive"]
        interval    = 30
        timeout     = 5
        retries     = 3
        startPeriod = 30
      }
      stopTimeout = 45
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.remediator.name
          awslogs-region        = var.region
          awslogs-stream-prefix = "remediator"
        }
      }
    },
  ])
}

resource "aws_service_discovery_service" "remediator" {
  name = var.name
  dns_config {
    namespace_id   = var.service_discovery_namespace_id
    routing_policy = "MULTIVALUE"
    dns_records {
      type = "A"
      ttl  = 10
    }
  }
  health_check_custom_config {
    failure_threshold = 1
  }
}

resource "aws_ecs_service" "remediator" {
  name            = var.name
  cluster         = var.cluster_arn
  task_definition = aws_ecs_task_definition.remediator.arn
  launch_type     = "FARGATE"
  desired_count   = 1

  # one task at a time: the old one lets go of the state store before the new one starts
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  enable_execute_command             = false

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.task.id]
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.remediator.arn
  }

  depends_on = [aws_efs_mount_target.state, aws_iam_role_policy.storage]
}
