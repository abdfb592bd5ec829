// A stand-in DOM that runs review_page.html's scripts in node, where no browser is installed:
// elements with what the page uses of them, requests answered by the test (or held until the
// page cancels them), timers held until the test runs them. tests/review_server/test_review_page.py drives
// it; the counts of elements made tell whether the page rebuilt its list.
"use strict";
const fs = require("fs");
const vm = require("vm");

class Element {
  constructor(tag, doc) {
    this.tagName = tag.toUpperCase();
    this.doc = doc;
    this.children = [];
    this.parentNode = null;
    this.attributes = {};
    this.style = {};
    this.listeners = {};
    this.className = "";
    this.value = "";
    this.checked = false;
    this.clientWidth = 900;
    this.naturalWidth = 0;
    this._text = "";
    this._src = "";
    doc.made += 1;
  }
  get id() { return this.attributes.id || ""; }
  setAttribute(name, value) {
    value = String(value);
    if (name === "class") this.className = value;
    else this.attributes[name] = value;
    if (name === "id") this.doc.byId[value] = this;
  }
  removeAttribute(name) {
    if (name === "class") this.className = "";
    else delete this.attributes[name];
  }
  getAttribute(name) {
    if (name === "class") return this.className;
    return Object.prototype.hasOwnProperty.call(this.attributes, name) ?
      this.attributes[name] : null;
  }
  get dataset() {
    const out = {};
    for (const k of Object.keys(this.attributes)) {
      if (k.startsWith("data-")) {
        out[k.slice(5).replace(/-(\w)/g, (_, c) => c.toUpperCase())] = this.attributes[k];
      }
    }
    return out;
  }
  get src() { return this._src; }
  set src(value) {
    this._src = String(value);
    if (this.onload) this.doc.later(() => { this.naturalWidth = 100; this.onload(); });
  }
  get href() { return this.attributes.href || ""; }
  set href(value) { this.attributes.href = String(value); }
  get textContent() { return this._text + this.children.map((c) => c.textContent).join(""); }
  set textContent(text) {
    for (const c of this.children) c.parentNode = null;
    this.children = [];
    this._text = String(text);
  }
  get lastChild() { return this.children[this.children.length - 1] || null; }
  get firstChild() { return this.children[0] || null; }
  appendChild(child) { return this.insertBefore(child, null); }
  insertBefore(child, ref) {
    if (child.isFragment) {
      for (const c of child.children.slice()) this.insertBefore(c, ref);
      child.children = [];
      return child;
    }
    if (child.parentNode) child.parentNode.removeChild(child);
    const at = ref === null ? this.children.length : this.children.indexOf(ref);
    if (at < 0) throw new Error("insertBefore: not a child");
    this.children.splice(at, 0, child);
    child.parentNode = this;
    return child;
  }
  removeChild(child) {
    const at = this.children.indexOf(child);
    if (at < 0) throw new Error("removeChild: not a child");
    this.children.splice(at, 1);
    child.parentNode = null;
    return child;
  }
  addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); }
  dispatchEvent(event) {  // bubbles up to the document
    event.target = event.target || this;
    event.preventDefault = event.preventDefault || (() => {});
    for (let node = this; node; node = node.parentNode) {
      for (const fn of (node.listeners[event.type] || [])) fn.call(node, event);
    }
    this.doc.dispatchEvent(event);
  }
  // "#id", "#id tag", "#id tag.class": what the page may select besides ids.
  querySelectorAll(selector) {
    const [first, ...rest] = selector.trim().split(/\s+/);
    let found = first.startsWith("#") ? [this.doc.getElementById(first.slice(1))]
      .filter(Boolean) : descendants(this).filter((e) => matches(e, first));
    for (const part of rest) {
      found = found.flatMap((e) => descendants(e).filter((d) => matches(d, part)));
    }
    return found;
  }
  querySelector(selector) { return this.querySelectorAll(selector)[0] || null; }
  click() {
    if (this.onclick) this.onclick();
    this.dispatchEvent({type: "click", target: this});
  }
  scrollIntoView() {}
  focus() { this.doc.activeElement = this; }
  blur() { if (this.doc.activeElement === this) this.doc.activeElement = this.doc.body; }
}

function descendants(e) {
  return e.children.flatMap((c) => [c, ...descendants(c)]);
}

function matches(e, part) {
  const [tag, cls] = part.split(".");
  return (!tag || e.tagName === tag.toUpperCase()) &&
    (!cls || e.className.split(" ").includes(cls));
}

class Document {
  constructor() {
    this.isDocument = true;
    this.made = 0;
    this.byId = {};
    this.listeners = {};
    this.title = "";
    this.tasks = [];
    this.body = new Element("body", this);
    this.body.parentNode = null;
    this.activeElement = this.body;
  }
  later(task) { this.tasks.push(task); }
  createElement(tag) { return new Element(tag, this); }
  createTextNode(text) {  // a text node: its text, no tag of its own
    const node = new Element("#text", this);
    node._text = String(text);
    return node;
  }
  createDocumentFragment() {
    const fragment = new Element("#fragment", this);
    fragment.isFragment = true;
    return fragment;
  }
  getElementById(id) { return this.byId[id] || null; }
  addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); }
  dispatchEvent(event) { for (const fn of (this.listeners[event.type] || [])) fn(event); }
  querySelectorAll(selector) { return this.body.querySelectorAll(selector); }
  querySelector(selector) { return this.body.querySelector(selector); }
}

// The page's elements with an id, each a child of the body (their nesting is not needed).
function buildBody(doc, html) {
  const body = html.match(/<body([^>]*)>/);
  for (const [, name, value] of body[1].matchAll(/([\w-]+)="([^"]*)"/g)) {
    doc.body.setAttribute(name, value);
  }
  for (const [, tag, attrs] of html.matchAll(/<(\w+)([^>]*\sid="[^"]+"[^>]*)>/g)) {
    const e = doc.createElement(tag);
    for (const [, name, value] of attrs.matchAll(/([\w-]+)="([^"]*)"/g)) {
      e.setAttribute(name, value);
    }
    if (/\schecked\b/.test(attrs)) e.checked = true;
    doc.body.appendChild(e);
  }
}

function abortError() {
  const err = new Error("The operation was aborted.");
  err.name = "AbortError";
  return err;
}

// `answer(url, options)` -> {status, json} or {status, body} (a tile), or "hold": the request
// stays open until the page aborts it. Every request is recorded in `requests`.
function openPage(htmlPath, answer, pathname, search) {
  const html = fs.readFileSync(htmlPath, "utf8");
  const doc = new Document();
  buildBody(doc, html);
  const requests = [], timers = [];
  const storage = {};
  function fetch(url, options) {
    options = options || {};
    const record = {url: String(url), method: options.method || "GET",
                    body: options.body, aborted: false, settled: false};
    requests.push(record);
    const reply = answer(record.url, options);
    if (reply === "hold") {
      return new Promise((resolve, reject) => {
        if (options.signal) {
          options.signal.addEventListener("abort", () => {
            record.aborted = true;
            reject(abortError());
          });
        }
      });
    }
    record.settled = true;
    const status = reply.status || 200;
    return Promise.resolve({
      ok: status < 400, status, statusText: String(status),
      json: () => Promise.resolve(reply.json),
      blob: () => Promise.resolve(new Blob([reply.body || "png"])),
    });
  }
  const context = {
    document: doc, console, JSON, Math, Object, Array, String, Number, RegExp, Error,
    Promise, Blob, AbortController,
    URL: {createObjectURL: () => "blob:tile", revokeObjectURL: () => {}},
    location: {pathname: pathname || "/review/P001", search: search || "",
               reload: () => {}},
    localStorage: {getItem: (k) => (k in storage ? storage[k] : null),
                   setItem: (k, v) => { storage[k] = String(v); }},
    fetch,
    setInterval: (fn) => { timers.push(fn); return timers.length; },
    setTimeout: (fn) => { doc.later(fn); return 0; },
    clearTimeout: () => {}, clearInterval: () => {},
  };
  context.addEventListener = () => {};  // the window's own events (resize) never come here
  context.window = context;
  vm.createContext(context);
  for (const [, source] of html.matchAll(/<script[^>]*>([\s\S]*?)<\/script>/g)) {
    vm.runInContext(source, context);
  }
  async function settle() {  // promises, then the page's own deferred tasks, until quiet
    for (let round = 0; round < 50; round++) {
      await new Promise((resolve) => setImmediate(resolve));
      const tasks = doc.tasks.splice(0);
      tasks.forEach((t) => t());
    }
  }
  function key(name, target) {
    doc.dispatchEvent({type: "keydown", key: name, target: target || doc.body,
                       preventDefault() {}});
  }
  function rows() { return doc.getElementById("list").children; }
  return {context, document: doc, requests, timers, settle, key, rows,
          run: (code) => vm.runInContext(code, context)};
}

module.exports = {openPage};
