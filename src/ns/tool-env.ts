// The environment the network tools (ip, sysctl, iptables, nft) run with: stasis's own, with
// the sbin directories on PATH. Made by the first call (not as the module is evaluated: the
// command line's start-up snapshot holds every module evaluated, and the environment is the run's).
let env: NodeJS.ProcessEnv | undefined;

/** process.env with /usr/sbin and /sbin appended to PATH. */
export function toolEnv(): NodeJS.ProcessEnv {
  return (env ??= { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` });
}
