/* e9-send: copies stdin to I/O port 0xE9, one outb per byte.  Bochs' port_e9_hack writes
 * each byte to its stdout at once: unlike its 16550 serial ports it models no baud rate, so
 * megabytes of coverage counters leave a Bochs guest in seconds instead of the ~15 min a
 * 115200-baud port would take.  Built static by ci/lib/make-initramfs for the guest. */
#include <stdio.h>
#include <sys/io.h>
#include <unistd.h>

int main(void)
{
	unsigned char buf[65536];
	ssize_t n;

	if (ioperm(0xe9, 1, 1) != 0) {
		perror("e9-send: ioperm(0xe9)");
		return 1;
	}
	while ((n = read(0, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			outb(buf[i], 0xe9);
	return n < 0;
}
