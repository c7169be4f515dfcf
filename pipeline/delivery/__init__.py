"""Delivery: getting each department's package from the outbox to where it is read (folder,
SFTP, e-mail), logged; delivered files edited in place are set aside, never overwritten."""
