/*
 * storm.c: the C helpers of bench/bench_inits.py, kept tiny so that their own work is minimal.
 * Built by the benchmark into a temporary directory (cc -O2 -o "$tmp/storm" bench/storm.c);
 * never committed as a binary.
 *
 *   storm orphans N GO DONE  fork N children, print N and exit: the children become orphans of
 *                            the namespace's PID 1, alive, blocked in read(GO). Whoever holds
 *                            GO's write end (the benchmark) releases them all at once by closing
 *                            it; each then _exits(0). They hold DONE (a pipe's write end) until
 *                            they exit, so its reader sees EOF once the last one has exited.
 *   storm zombies N GO       fork N children that _exit(0) at once; once all have exited, print
 *                            "ready" and block in read(GO). At its EOF we exit, and the kernel
 *                            hands all N zombies to PID 1 at once.
 *   storm trickle N          N times, one at a time: fork a child that forks an orphan and exits;
 *                            the orphan exits 0.1 ms later, so PID 1 reaps it alone (a wakeup
 *                            per orphan). 0.4 ms between orphans.
 *   storm init               the kernel's own auto-reap as PID 1: SIGCHLD set to SIG_IGN (the
 *                            kernel reaps children as they exit: none becomes a zombie), then
 *                            pause(). SIGTERM and SIGINT have a handler (the init of a PID
 *                            namespace gets no signal it has no handler for) that exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signo) {
	(void)signo;
	_exit(0);
}

static int init(void) {
	struct sigaction ignore = {.sa_handler = SIG_IGN};
	struct sigaction down = {.sa_handler = stop};
	if (sigaction(SIGCHLD, &ignore, NULL) < 0 || sigaction(SIGTERM, &down, NULL) < 0 ||
	    sigaction(SIGINT, &down, NULL) < 0) {
		perror("storm init: sigaction");
		return 1;
	}
	for (;;)
		pause();
}

/* Block until every holder of fd's pipe's write end has closed it. */
static void wait_eof(int fd) {
	char byte;
	while (read(fd, &byte, 1) > 0)
		;
}

static int orphans(long count, int go, int done) {
	(void)done; /* inherited by the children, which hold it until they exit */
	for (long i = 0; i < count; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("storm orphans: fork");
			return 1;
		}
		if (pid == 0) {
			/* Whoever reads our parent's output to its end must not wait for us. */
			close(STDOUT_FILENO);
			close(STDERR_FILENO);
			wait_eof(go);
			_exit(0);
		}
	}
	printf("%ld\n", count);
	return 0;
}

static int zombies(long count, int go) {
	int exited[2];
	if (pipe(exited) < 0) {
		perror("storm zombies: pipe");
		return 1;
	}
	for (long i = 0; i < count; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("storm zombies: fork");
			return 1;
		}
		if (pid == 0)
			_exit(0); /* closes its copy of exited[1] */
	}
	close(exited[1]);
	wait_eof(exited[0]); /* every child has exited (it may still be finishing its exit) */
	printf("ready\n");
	fflush(stdout);
	wait_eof(go);
	return 0;
}

static int trickle(long count) {
	for (long i = 0; i < count; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("storm trickle: fork");
			return 1;
		}
		if (pid == 0) {
			if (fork() == 0) {
				usleep(100);
				_exit(0);
			}
			_exit(0);
		}
		waitpid(pid, NULL, 0);
		usleep(400);
	}
	return 0;
}

int main(int argc, char **argv) {
	if (argc == 2 && strcmp(argv[1], "init") == 0)
		return init();
	if (argc == 5 && strcmp(argv[1], "orphans") == 0)
		return orphans(strtol(argv[2], NULL, 10), (int)strtol(argv[3], NULL, 10),
			       (int)strtol(argv[4], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "trickle") == 0)
		return trickle(strtol(argv[2], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "zombies") == 0)
		return zombies(strtol(argv[2], NULL, 10), (int)strtol(argv[3], NULL, 10));
	fprintf(stderr, "usage: storm orphans N GO DONE | storm zombies N GO | storm trickle N | "
			"storm init\n");
	return 64;
}
