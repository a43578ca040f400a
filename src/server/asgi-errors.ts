// The error an ASGI application gets when it sends a message the protocol does not allow at that
// point, worded as uvicorn words it, so that it names what was expected and what came instead:
//   Expected ASGI message 'websocket.accept', 'websocket.close' or ..., but got 'websocket.send'

export function unexpectedMessage(got: unknown, expected: string[]): Error {
  const list = expected.map((name) => `'${name}'`);
  const allowed = list.length === 1 ? list[0] : `${list.slice(0, -1).join(', ')} or ${list[list.length - 1]}`;
  return new Error(`Expected ASGI message ${allowed}, but got ${typeof got === 'string' ? `'${got}'` : String(got)}`);
}
