@echo -off
# Run by OVMF's UEFI shell from the reference run's tiny FAT disk (guest/run-reference.sh uefi).
echo "RAYOS-INIT workload=uefi-shell"
echo "RAYOS-RESULT uefi_shell=ok"
ver
echo "RAYOS-DONE status=ok"
# The host takes its screendump and quits QEMU; power off on our own after 10 minutes.
stall 600000000
reset -s
