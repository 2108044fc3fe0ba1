# Backup freshness of the Postgres layer: how old the newest pgBackRest backup may be, from the
# schedules themselves. For each cron schedule ("m h * * dow") the hours of the week it runs at;
# the longest gap between two runs (wrapping around the week) is the period. Full backups must be no
# older than the full schedule's period + margin; the newest backup of any type (full or
# differential) no older than the gap of all schedules together + margin: with a weekly full on
# Sunday and differentials Monday to Saturday that is 24 h, although the newest differential is 48 h
# old on Monday morning.
locals {
  pg_backup_run_hours = { for type, cron in var.postgres_backup_schedules : type => distinct(flatten([
    for part in split(",", split(" ", cron)[4]) : [
      for day in(part == "*" ? range(0, 7) : can(regex("-", part)) ? range(tonumber(split("-", part)[0]), tonumber(split("-", part)[1]) + 1) : [tonumber(part)]) :
      # cron's 7 is Sunday, like 0; fixed-width text so that sort() orders numerically
      format("%09.3f", (day % 7) * 24 + tonumber(split(" ", cron)[1]) + tonumber(split(" ", cron)[0]) / 60)
    ]
  ])) }
  pg_backup_all_run_hours = sort(distinct(flatten(values(local.pg_backup_run_hours))))
  pg_backup_gap_hours = { for type, hours in merge({ for t, h in local.pg_backup_run_hours : t => sort(h) }, { any = local.pg_backup_all_run_hours }) : type => max([
    for i, h in hours : (i + 1 < length(hours) ? tonumber(hours[i + 1]) : tonumber(hours[0]) + 168) - tonumber(h)
  ]...) }
  pg_backup_max_age_seconds = {
    full = ceil((local.pg_backup_gap_hours.full + var.postgres_backup_age_margin_hours) * 3600)
    any  = ceil((local.pg_backup_gap_hours.any + var.postgres_backup_age_margin_hours) * 3600)
  }
}
