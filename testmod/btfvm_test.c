// SPDX-License-Identifier: GPL-2.0
/*
 * btfvm's test module, built by `btfvm kernel build` against each built
 * tree. Scenarios check its split BTF by exact content: struct
 * btfvm_test_point must be the module's own type, and its members must point
 * at vmlinux's own "int", "long int" and "unsigned int" (deduplicated, not
 * copied). btfvm_test_func is noinline and exported so that it stays a real
 * function with a BTF FUNC entry that fentry and fexit programs attach to
 * through the module's BTF object; writing the `trigger` parameter calls it
 * once, so a scenario can count the program's runs.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/compiler.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <linux/version.h>

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
 * A function with the name and prototype of a vmlinux one
 * (drivers/tty/sysrq.c, built in wherever MAGIC_SYSRQ is), which writing
 * "7" to /proc/sysrq-trigger calls. With the same prototype, pahole's
 * dedup gives the module no FUNC of its own for it, so a program names it
 * by vmlinux's FUNC ID, and the BTF object it names decides which function
 * that is: the kernel looks the name up in that module's symbols
 * (kernel/bpf/verifier.c, bpf_check_attach_target; 6.1 still took the
 * first match in all of kallsyms, vmlinux's). The prototype must match
 * exactly: 6.12.117 with pahole 1.24 gave an `int key` copy a FUNC of its
 * own (measured 2026-12-06), since sysrq handlers take a u8 there
 * ("tty: sysrq: switch sysrq handlers from int to u8", v6.7); 6.1.176's
 * take an int. noipa: no clone with a suffixed symbol name.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
#define BTFVM_SYSRQ_KEY u8
#else
#define BTFVM_SYSRQ_KEY int
#endif
static noinline __attribute__((__noipa__)) void sysrq_handle_loglevel(BTFVM_SYSRQ_KEY key)
{
	barrier();
}

static int btfvm_test_trigger(const char *val, const struct kernel_param *kp)
{
	sysrq_handle_loglevel(btfvm_test_func(btfvm_test_points));
	return 0;
}

static const struct kernel_param_ops btfvm_test_trigger_ops = {
	.set = btfvm_test_trigger,
};
module_param_cb(trigger, &btfvm_test_trigger_ops, NULL, 0200);
MODULE_PARM_DESC(trigger, "any write calls btfvm_test_func and sysrq_handle_loglevel once");

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
