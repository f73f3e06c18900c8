// The x86_64 system calls stasis uses, by name (arch/x86/entry/syscalls/syscall_64.tbl).
export const SYS = {
  read: 0, write: 1, close: 3, pause: 34, execve: 59, fstat: 5, poll: 7, lseek: 8, mmap: 9, mprotect: 10, munmap: 11, brk: 12,
  rt_sigaction: 13, rt_sigprocmask: 14, ioctl: 16, pread64: 17, pwrite64: 18, readv: 19, writev: 20,
  mremap: 25, shmget: 29, shmat: 30, shmctl: 31, semget: 64, semop: 65, semctl: 66, shmdt: 67, msgget: 68, msgsnd: 69, msgrcv: 70, msgctl: 71, msync: 26, mincore: 27, madvise: 28, dup: 32, dup2: 33, nanosleep: 35, getitimer: 36,
  setitimer: 38, getpid: 39, socket: 41, connect: 42, sendto: 44, recvfrom: 45, sendmsg: 46, recvmsg: 47,
  shutdown: 48, bind: 49, listen: 50, getsockname: 51, getpeername: 52, socketpair: 53, setsockopt: 54,
  getsockopt: 55, wait4: 61, kill: 62, fcntl: 72, flock: 73, ftruncate: 77, getcwd: 79, fchown: 93,
  chdir: 80, fchdir: 81, umask: 95, ptrace: 101, setpgid: 109, getppid: 110, setsid: 112,
  setresuid: 117, setresgid: 119, getpgid: 121, getsid: 124, rt_sigtimedwait: 128, rt_sigqueueinfo: 129, sigaltstack: 131, personality: 135,
  prctl: 157, arch_prctl: 158, chroot: 161, gettid: 186, futex: 202, clock_gettime: 228, set_tid_address: 218, exit_group: 231,
  epoll_ctl: 233, ppoll: 271, tgkill: 234, openat: 257, unshare: 272, set_robust_list: 273, get_robust_list: 274, splice: 275, tee: 276,
  vmsplice: 278, timerfd_create: 283, fallocate: 285, timerfd_settime: 286, timerfd_gettime: 287, accept4: 288, signalfd4: 289,
  eventfd2: 290, epoll_create1: 291, dup3: 292, pipe2: 293,
  preadv: 295, pwritev: 296, rt_tgsigqueueinfo: 297, prlimit64: 302, process_vm_readv: 310,
  process_vm_writev: 311, kcmp: 312, memfd_create: 319, userfaultfd: 323, membarrier: 324, rseq: 334,
  open_tree: 428, move_mount: 429, statx: 332, fsopen: 430, fsconfig: 431, fsmount: 432, pidfd_open: 434, clone3: 435, close_range: 436, pidfd_getfd: 438,
  timer_create: 222, timer_settime: 223, timer_gettime: 224, timer_getoverrun: 225, timer_delete: 226,
  inotify_add_watch: 254, inotify_rm_watch: 255, inotify_init1: 294, open_by_handle_at: 304,
  linkat: 265, mknodat: 259, readlinkat: 267, fanotify_init: 300, fanotify_mark: 301,
  // scheduling, seccomp
  getpriority: 140, setpriority: 141, sched_getparam: 143, sched_setscheduler: 144, sched_getscheduler: 145,
  sched_setaffinity: 203, sched_getaffinity: 204, seccomp: 317,
  mlock: 149, setns: 308, mount: 165, umount2: 166, pivot_root: 155, mount_setattr: 442, sethostname: 170, setdomainname: 171, uname: 63,
  // Credentials.
  getgroups: 115, setgroups: 116, setfsuid: 122, setfsgid: 123, capget: 125, capset: 126,
} as const;

export type SyscallName = keyof typeof SYS;
