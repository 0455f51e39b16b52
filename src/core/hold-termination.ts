// Imported first by each entry point (the server, the worker): from here on a termination signal
// that comes while the rest of the process is still loading is kept and answered by the clean stop,
// rather than ending the process by the signal's default action.
import { holdTerminationSignals } from './termination';

holdTerminationSignals();
