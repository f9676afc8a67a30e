#!/bin/sh
# Stands in for bookworm's QEMU 7.2, which refuses vhost-user under TCG.
echo "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)"
