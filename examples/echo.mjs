// An echo application for `node dist/main.js --app examples/echo.mjs`: the smallest complete
// ASGI-style app. HTTP requests get their method and path back; WebSocket messages come back as
// they were sent (text as text, bytes as bytes). See ../../shared/contract.md for the contract.
export default async function app(scope, receive, send) {
  if (scope.type === 'http') {
    // Read the whole request body (it may come in several http.request events).
    let size = 0;
    for (let more = true; more;) {
      const event = await receive();
      if (event.type === 'http.disconnect') return;
      size += event.body.length;
      more = event.more_body;
    }
    await send({ type: 'http.response.start', status: 200, headers: [['content-type', 'text/plain; charset=utf-8']] });
    await send({ type: 'http.response.body', body: Buffer.from(`${scope.method} ${scope.path} (${size} bytes of body)\n`) });
  } else if (scope.type === 'websocket') {
    await receive(); // websocket.connect
    await send({ type: 'websocket.accept', subprotocol: scope.subprotocols[0] ?? null });
    for (;;) {
      const event = await receive();
      if (event.type === 'websocket.disconnect') return;
      if (event.text !== undefined) await send({ type: 'websocket.send', text: event.text });
      else await send({ type: 'websocket.send', bytes: event.bytes });
    }
  } else if (scope.type === 'lifespan') {
    for (;;) {
      const event = await receive();
      if (event.type === 'lifespan.startup') await send({ type: 'lifespan.startup.complete' });
      if (event.type === 'lifespan.shutdown') return void await send({ type: 'lifespan.shutdown.complete' });
    }
  }
}
