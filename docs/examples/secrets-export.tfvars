# The daily Secrets/ConfigMaps export, encrypted to the public key of a key file kept OFF the
# cluster (`age-keygen -o ffe-secrets-export.key` prints it), and the nightly off-site copy of the
# whole backup share. Create the SSH key Secret first (docs/disaster-recovery.md, "Off-site copy").
secrets_export_age_recipient = "age18efmn5yjugfs49uypygezcvmw97emewgnxfrggkvkvlchzcrsvgq98sywe"
secrets_export_schedule      = "15 2 * * *"

backup_offsite = {
  target         = "ffe-backup@backup.example.com:/srv/ffe-offsite"
  known_hosts    = "backup.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICKur6GBf8+bPTrFLR/TbQb6rkVpWvnKg39lF+bm89aW"
  ssh_key_secret = "ffe-backup-offsite-ssh"
}
