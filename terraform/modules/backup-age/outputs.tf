output "postgres_max_age_seconds" {
  description = "Oldest acceptable age, in seconds, of the newest full pgBackRest backup (full) and of the newest backup of any type (any): the schedule's longest gap plus the margin."
  value       = local.pg_backup_max_age_seconds
}
