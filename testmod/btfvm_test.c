// SPDX-License-Identifier: GPL-2.0
/*
 * btfvm's test module, built by `btfvm kernel build` against each built
 * tree. Scenarios check its split BTF by exact content: struct
 * btfvm_test_point must be the module's own type, and its members must point
 * at vmlinux's own "int", "long int" and "unsigned int" (deduplicated, not
 * copied). btfvm_test_func is noinline and exported so that it stays a real
 * function with a BTF FUNC entry that a BPF program can later attach to.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/compiler.h>
#include <linux/moduleparam.h>
#include <linux/string.h>

struct btfvm_test_point {
	int x;
	long y;
	unsigned int flags;
	struct btfvm_test_point *next;
};

noinline int btfvm_test_func(struct btfvm_test_point *p)
{
	int sum = 0;

	/* The barrier keeps the loop from being folded at compile time. */
	for (; p; p = p->next) {
		barrier();
		sum += p->x + (int)p->y + (int)p->flags;
	}
	return sum;
}
EXPORT_SYMBOL_GPL(btfvm_test_func);

static struct btfvm_test_point btfvm_test_points[2] = {
	{ .x = 1, .y = 2, .flags = 3, .next = &btfvm_test_points[1] },
	{ .x = 4, .y = 5, .flags = 6 },
};

/*
 * splat=warn makes the load print a real kernel WARNING, so btfvm's splat
 * detection and allowlist are tested on the kernel's own output: the stock
 * Debian kernels have no LKDTM to provoke one.
 */
static char *splat = "";
module_param(splat, charp, 0444);
MODULE_PARM_DESC(splat, "\"warn\": WARN() while loading (for btfvm's fault tests)");

static int __init btfvm_test_init(void)
{
	WARN(!strcmp(splat, "warn"), "btfvm_test: WARN on request (splat=warn)\n");
	pr_info("btfvm_test: loaded, sum %d\n", btfvm_test_func(btfvm_test_points));
	return 0;
}

static void __exit btfvm_test_exit(void)
{
}

module_init(btfvm_test_init);
module_exit(btfvm_test_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("btfvm test module: a known struct and a noinline function for BTF checks");
