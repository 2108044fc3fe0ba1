variable "postgres_backup_schedules" {
  description = "pgBackRest backup schedules (type -> cron \"m h * * dow\" with plain numbers; key full required), as in modules/postgres/ha-settings.yaml. The callers validate the cron form (modules/monitoring)."
  type        = map(string)
  nullable    = false
  validation {
    condition     = contains(keys(var.postgres_backup_schedules), "full")
    error_message = "postgres_backup_schedules = ${jsonencode(var.postgres_backup_schedules)} has no key full: the full-backup age limit is derived from it."
  }
}

variable "postgres_backup_age_margin_hours" {
  description = "Hours a backup may be late, added to the schedule's period."
  type        = number
  nullable    = false
  validation {
    condition     = var.postgres_backup_age_margin_hours > 0
    error_message = "postgres_backup_age_margin_hours = ${var.postgres_backup_age_margin_hours} must be positive."
  }
}
