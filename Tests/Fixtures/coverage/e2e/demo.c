#include <stdlib.h>
static int clamp(int x) {
	/* big values are clamped */
	if (x > 9)
		return 9;
	return x;
}
int never(int x) {
	return clamp(x) + 1;
}
int main(int argc, char **argv) {
	return clamp(atoi(argv[1])) == 9 ? 0 : 0;
}
