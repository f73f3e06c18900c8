// Where `stasis service` listens unless told (CRIU's default), in a module of its own so that
// the command line's help names it without loading the service.
export const DEFAULT_SERVICE_ADDRESS = '/var/run/criu_service.socket';
