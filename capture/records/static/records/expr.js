/* The browser's interpreter of the expression AST made by capture/definitions/expressions.py.
 *
 * The server sends each form's ASTs as JSON; this file evaluates them exactly as the
 * Python evaluator does (same blank, number, comparison and rounding rules). Keep the two
 * in step: fixtures/expressions/vectors.json runs against both (tests/web/test_ecrf_browser.py).
 */
(function (global) {
  "use strict";
  var BLANK = "";
  var NUMERIC = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;
  var DATE = /^(\d{1,4})-(\d{1,2})-(\d{1,4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$/;
  var UNITS = { y: 365.2425 * 86400, M: 30.44 * 86400, d: 86400, h: 3600, m: 60, s: 1 };

  function isBlank(v) {
    return v === null || v === undefined || v === "" || (Array.isArray(v) && v.length === 0);
  }
  function normal(n) {
    return isFinite(n) ? n : BLANK;
  }
  function scalar(v) {
    if (Array.isArray(v)) {
      if (v.length === 0) return BLANK;
      if (v.length === 1) return v[0];
    }
    return v;
  }
  function toText(v) {
    if (isBlank(v)) return "";
    if (v === true) return "1";
    if (v === false) return "0";
    if (typeof v === "number") return isFinite(v) ? String(v) : "";
    if (Array.isArray(v)) return v.map(toText).join(",");
    return String(v);
  }
  function truthy(v) {
    if (isBlank(v)) return false;
    if (typeof v === "boolean") return v;
    if (typeof v === "number") return v !== 0;
    if (typeof v === "string" && NUMERIC.test(v)) return parseFloat(v) !== 0;
    return true;
  }
  function moment(text, fmt) {
    text = String(text).trim();
    var low = text.toLowerCase();
    if (low === "today" || low === "now") {
      var d = new Date();
      // Naive local time, read as if UTC, as Python's naive datetime does.
      return Date.UTC(d.getFullYear(), d.getMonth(), d.getDate(),
        low === "now" ? d.getHours() : 0, low === "now" ? d.getMinutes() : 0, low === "now" ? d.getSeconds() : 0);
    }
    var m = DATE.exec(text.replace(/\//g, "-"));
    if (!m) return null;
    var a = +m[1], b = +m[2], c = +m[3], y, mo, da;
    if (fmt === "mdy") { y = c; mo = a; da = b; } else if (fmt === "dmy") { y = c; mo = b; da = a; } else { y = a; mo = b; da = c; }
    var h = +(m[4] || 0), mi = +(m[5] || 0), s = +(m[6] || 0);
    if (mo < 1 || mo > 12 || da < 1 || h > 23 || mi > 59 || s > 59 || y < 1) return null;
    var t = Date.UTC(y, mo - 1, da, h, mi, s);
    var check = new Date(t);
    if (y < 100) { check.setUTCFullYear(y); t = check.getTime(); }
    if (check.getUTCDate() !== da || check.getUTCMonth() !== mo - 1) return null;
    return t;
  }
  function round(n, places, fn) {
    // Shift by the decimal exponent in text, as Python's Decimal(repr(x)) does: round(1.005, 2) = 1.01.
    var sign = n < 0 ? -1 : 1, a = Math.abs(n);
    var shifted = Number(String(a) + "e" + places);
    if (String(a).indexOf("e") >= 0) shifted = a * Math.pow(10, places);
    var r = fn === "round" ? Math.round(shifted) : fn === "roundup" ? Math.ceil(shifted) : Math.floor(shifted);
    // Math.round rounds .5 up, so on the absolute value it rounds half away from zero.
    var back = Number(String(r) + "e" + (-places));
    if (String(r).indexOf("e") >= 0) back = r / Math.pow(10, places);
    back = sign * back;
    return back === 0 ? 0 : normal(back);
  }

  function Evaluator(values, events, missing) {
    this.values = values || {};
    this.events = events || {};
    this.missing = missing || [];
  }
  Evaluator.prototype.isMissing = function (v) {
    return typeof v === "string" && this.missing.indexOf(v) >= 0;
  };
  Evaluator.prototype.num = function (v) {
    v = scalar(v);
    if (typeof v === "boolean") return v ? 1 : 0;
    if (typeof v === "number") return isFinite(v) ? v : null;
    if (typeof v === "string" && !this.isMissing(v) && NUMERIC.test(v)) {
      var f = parseFloat(v);
      return isFinite(f) ? f : null; // '1e400' is no number we can use (as in Python)
    }
    return null;
  };
  Evaluator.prototype.numbers = function (args) {
    var found = [], self = this;
    args.forEach(function (arg) {
      var v = self.run(arg);
      (Array.isArray(v) ? v : [v]).forEach(function (item) {
        var n = self.num(item);
        if (n !== null) found.push(n);
      });
    });
    return found;
  };
  Evaluator.prototype.run = function (node) {
    var self = this;
    switch (node.t) {
      case "num": case "str": case "bool":
        return node.v;
      case "field": {
        var source = node.e ? (this.events[node.e] || {}) : this.values;
        var v = source[node.f];
        if (node.c !== null && node.c !== undefined) {
          if (Array.isArray(v)) return v.map(String).indexOf(node.c) >= 0 ? "1" : "0";
          return v !== null && v !== undefined && String(v) === node.c ? "1" : "0";
        }
        return v === null || v === undefined ? BLANK : v;
      }
      case "neg": {
        var n = this.num(this.run(node.a));
        return n === null ? BLANK : normal(-n) + 0;
      }
      case "bin": {
        var a = this.num(this.run(node.a)), b = this.num(this.run(node.b));
        if (a === null || b === null) return BLANK;
        switch (node.op) {
          case "+": return normal(a + b);
          case "-": return normal(a - b);
          case "*": return normal(a * b);
          case "/": return b === 0 ? BLANK : normal(a / b);
          default: return normal(Math.pow(a, b));
        }
      }
      case "cmp": return this.compare(node);
      case "and": return truthy(this.run(node.a)) && truthy(this.run(node.b));
      case "or": return truthy(this.run(node.a)) || truthy(this.run(node.b));
      case "not": return !truthy(this.run(node.a));
      case "call": return this.call(node.fn, node.args);
    }
    throw new Error("unknown expression node " + node.t);
  };
  Evaluator.prototype.compare = function (node) {
    var a = scalar(this.run(node.a)), b = scalar(this.run(node.b)), op = node.op;
    if (op !== "=" && op !== "<>") {
      if (this.isMissing(a)) a = BLANK;
      if (this.isMissing(b)) b = BLANK;
    }
    var ba = isBlank(a), bb = isBlank(b);
    if (ba || bb) {
      if (op === "=") return ba && bb;
      if (op === "<>") return !(ba && bb);
      return false;
    }
    var na = this.num(a), nb = this.num(b), x, y;
    if (na !== null && nb !== null) { x = na; y = nb; } else { x = toText(a); y = toText(b); }
    switch (op) {
      case "=": return x === y;
      case "<>": return x !== y;
      case "<": return x < y;
      case "<=": return x <= y;
      case ">": return x > y;
      default: return x >= y;
    }
  };
  Evaluator.prototype.call = function (fn, args) {
    var self = this, found, n;
    if (fn === "if") return truthy(this.run(args[0])) ? this.run(args[1]) : this.run(args[2]);
    if (fn === "sum" || fn === "mean" || fn === "min" || fn === "max") {
      found = this.numbers(args);
      if (!found.length) return BLANK;
      var total = found.reduce(function (s, v) { return s + v; }, 0);
      if (fn === "sum") return normal(total);
      if (fn === "mean") return normal(total / found.length);
      return fn === "min" ? Math.min.apply(null, found) : Math.max.apply(null, found);
    }
    if (fn === "concat") return args.map(function (a) { return toText(scalar(self.run(a))); }).join("");
    if (fn === "contains") {
      return toText(scalar(this.run(args[0]))).toLowerCase().indexOf(toText(scalar(this.run(args[1]))).toLowerCase()) >= 0;
    }
    if (fn === "isblankormissingcode") {
      var v = scalar(this.run(args[0]));
      return isBlank(v) || this.isMissing(v);
    }
    if (fn === "datediff") return this.datediff(args);
    if (fn === "year" || fn === "month" || fn === "day") {
      var t = moment(toText(scalar(this.run(args[0]))), "ymd");
      if (t === null) return BLANK;
      var d = new Date(t);
      return fn === "year" ? d.getUTCFullYear() : fn === "month" ? d.getUTCMonth() + 1 : d.getUTCDate();
    }
    n = this.num(this.run(args[0]));
    if (n === null) return BLANK;
    if (fn === "abs") return Math.abs(n);
    if (fn === "sqrt") return n < 0 ? BLANK : Math.sqrt(n);
    var places = args.length > 1 ? this.num(this.run(args[1])) : 0;
    if (places === null) return BLANK;
    return round(n, Math.trunc(places), fn);
  };
  Evaluator.prototype.datediff = function (args) {
    var self = this, values = args.map(function (a) { return self.run(a); });
    var unit = values.length > 2 ? toText(values[2]) : "d", fmt = "ymd", signed = false;
    values.slice(3).forEach(function (extra) {
      var text = toText(extra);
      if (["ymd", "mdy", "dmy"].indexOf(text.toLowerCase()) >= 0) fmt = text.toLowerCase();
      else signed = truthy(extra) && text.toLowerCase() !== "false";
    });
    if (!Object.prototype.hasOwnProperty.call(UNITS, unit)) return BLANK;
    var a = moment(toText(scalar(values[0])), fmt), b = moment(toText(scalar(values[1])), fmt);
    if (a === null || b === null) return BLANK;
    var diff = (b - a) / 1000 / UNITS[unit];
    return normal(signed ? diff : Math.abs(diff));
  };

  global.CaptureExpr = {
    evaluate: function (ast, values, events, missingCodes) {
      return new Evaluator(values, events, missingCodes).run(ast);
    },
    truthy: truthy,
    toText: toText,
    round: round,
    isBlank: isBlank
  };
})(window);
