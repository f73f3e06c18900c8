// A real server: node's http on 127.0.0.1 (or argv[3]: `::` listens on IPv6 and IPv4 both), on
// an ephemeral port it writes to `port`, serving
// a counter it keeps in memory only (each request adds one). It writes `ready` once it has
// answered its first request (from itself), and goes on serving until GET /quit, which
// writes `result`.
import fs from 'node:fs';
import http from 'node:http';

process.chdir(process.argv[2]);
const write = (name, text) => {
  fs.writeFileSync(`${name}.tmp`, text);
  fs.renameSync(`${name}.tmp`, name);
};
let count = 0;
const started = process.pid;
const server = http.createServer((req, res) => {
  if (req.url === '/quit') {
    res.end('bye\n', () => {
      write('result', `PASS\n${count}\n`);
      server.close();
      process.exit(0);
    });
    return;
  }
  count += 1;
  res.setHeader('connection', 'close');
  res.end(`count ${count} pid ${started}\n`);
});
server.listen(0, process.argv[3] ?? '127.0.0.1', () => {
  const { port } = server.address();
  write('port', `${port}\n`);
  http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
    res.resume();
    res.on('end', () => {
      // The client socket is closed by now; wait until the server's end is gone too.
      setTimeout(() => write('ready', 'ready\n'), 200);
    });
  });
});
