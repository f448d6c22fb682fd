#pragma once
// The chat page served at /: self-contained HTML and JavaScript (no external
// assets) speaking the line protocol over WebSocket at /ws.
#include <string_view>

namespace chat {

inline constexpr std::string_view page_html = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>coronet chat</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; }
  header { padding: .6em 1em; background: #24323f; color: #fff; display: flex; gap: .6em; align-items: center; flex-wrap: wrap; }
  header h1 { font-size: 1.1em; margin: 0 1em 0 0; }
  #log { flex: 1; overflow-y: auto; padding: .6em 1em; margin: 0; list-style: none; }
  #log li { white-space: pre-wrap; word-break: break-word; }
  #log li.notice { color: #667; }
  #log li.error { color: #b00; }
  form#send { display: flex; gap: .5em; padding: .6em 1em; border-top: 1px solid #ccd; }
  form#send input { flex: 1; }
  input, button { font: inherit; padding: .3em .5em; }
  #status { margin-left: auto; font-size: .9em; opacity: .8; }
</style>
</head>
<body>
<header>
  <h1>coronet chat</h1>
  <form id="enter">
    <input id="nick" placeholder="nick" maxlength="32" required>
    <input id="room" placeholder="room" maxlength="64" value="lobby" required>
    <button id="join" type="submit">Join</button>
  </form>
  <span id="status">connecting…</span>
</header>
<ul id="log" aria-live="polite"></ul>
<form id="send">
  <input id="text" placeholder="say something (or /who, /rooms)" autocomplete="off" disabled>
  <button id="say" type="submit" disabled>Send</button>
</form>
<script>
"use strict";
const log = document.getElementById("log");
const status = document.getElementById("status");
const text = document.getElementById("text");
const say = document.getElementById("say");
let ws;

function show(line) {
  const li = document.createElement("li");
  li.textContent = line;
  if (line.startsWith("* ")) li.className = "notice";
  if (line.startsWith("error:")) li.className = "error";
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.appendChild(li);
  while (log.children.length > 1000) log.removeChild(log.firstChild);
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  ws = new WebSocket(scheme + location.host + "/ws");
  ws.onopen = () => { status.textContent = "connected"; };
  ws.onmessage = (e) => show(e.data);
  ws.onclose = (e) => {
    status.textContent = "disconnected" + (e.reason ? ": " + e.reason : "");
    text.disabled = say.disabled = true;
  };
}

document.getElementById("enter").addEventListener("submit", (e) => {
  e.preventDefault();
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  ws.send("/nick " + document.getElementById("nick").value.trim());
  ws.send("/join " + document.getElementById("room").value.trim());
  text.disabled = say.disabled = false;
  text.focus();
});

document.getElementById("send").addEventListener("submit", (e) => {
  e.preventDefault();
  if (text.value && ws.readyState === WebSocket.OPEN) ws.send(text.value);
  text.value = "";
});

connect();
</script>
</body>
</html>
)html";

} // namespace chat
