// isospec's HTML report: draws the data in #isospec-data (see
// src/report/html.rs).  No network, no libraries.
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('isospec-data').textContent);
  var app = document.getElementById('app');
  var scale = 'order';
  var redraws = [];
  // #all opens every spec and permutation; #spec-N opens one spec.
  var openAll = location.hash === '#all';
  var openSpec = /^#spec-\d+$/.test(location.hash) ? location.hash.slice(1) : null;

  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (attrs[k] === null || attrs[k] === undefined || attrs[k] === false) continue;
        if (k === 'text') e.textContent = attrs[k];
        else if (k === 'cls') e.className = attrs[k];
        else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), attrs[k]);
        else e.setAttribute(k, attrs[k]);
      }
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      if (Array.isArray(c)) c.forEach(function (x) { if (x) e.appendChild(x); });
      else e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }

  function us(t) {
    if (t < 1000) return t + ' µs';
    if (t < 1000000) return (t / 1000).toFixed(1) + ' ms';
    return (t / 1000000).toFixed(2) + ' s';
  }

  function lines(text) {
    if (!text) return [];
    var l = text.split('\n');
    if (l.length && l[l.length - 1] === '') l.pop();
    return l;
  }

  // ---- header and summary -------------------------------------------------
  var failing = data.specs.filter(function (s) { return !s.passed; });
  app.appendChild(el('h1', { text: data.title }));
  var toolbar = el('div', { cls: 'toolbar' });
  app.appendChild(toolbar);
  var scaleBtn = el('button', {
    id: 'scale', text: 'scale: step order',
    title: 'Draw steps in the order things happened, or to scale in time',
    onclick: function () {
      scale = scale === 'order' ? 'time' : 'order';
      scaleBtn.textContent = scale === 'order' ? 'scale: step order' : 'scale: time';
      redraws.forEach(function (f) { f(); });
    }
  });
  toolbar.appendChild(scaleBtn);
  var onlyFailing = el('button', {
    id: 'only-failing', text: 'only failing',
    onclick: function () {
      onlyFailing.classList.toggle('on');
      var on = onlyFailing.classList.contains('on');
      document.querySelectorAll('details.spec').forEach(function (d) {
        d.style.display = on && d.getAttribute('data-passed') === 'true' ? 'none' : '';
      });
    }
  });
  toolbar.appendChild(onlyFailing);
  toolbar.appendChild(el('span', { cls: 'legend' },
    el('span', { cls: 'sw', style: 'background: var(--step)' }), 'step sent → completed',
    el('span', { cls: 'sw', style: 'background: var(--wait)' }), 'waiting on a lock',
    el('span', { cls: 'sw', style: 'background: #ff8182' }), 'error',
    el('span', { cls: 'sw', style: 'outline: 3px solid var(--bad)' }), 'where the output departs'));

  if (data.kind === 'run') {
    var table = el('table', { cls: 'summary', id: 'summary' },
      el('tr', null, el('th', { text: 'spec' }), el('th', { text: 'status' }),
        el('th', { text: 'duration' }), el('th', { text: 'permutations' }), el('th', { text: 'where' })));
    data.specs.forEach(function (s, i) {
      var w = s.where ? (s.file ? s.file + ':' + s.where.line : '') + (s.where.place ? ' — ' + s.where.place : '') : '';
      table.appendChild(el('tr', {
        'data-spec': s.name, 'data-status': s.status,
        onclick: function () { var d = document.getElementById('spec-' + i); d.open = true; d.scrollIntoView(); }
      }, el('td', null, el('code', { text: s.name })), el('td', null, el('span', { cls: 'badge ' + s.status, text: s.status })),
        el('td', { text: s.duration_ms + ' ms' }), el('td', { text: s.permutations }), el('td', { cls: 'mono', text: w })));
    });
    app.appendChild(table);
  }

  // ---- one timeline --------------------------------------------------------
  // Draws permutation `p` of trace `t`; `dep` marks the departing step.
  function timeline(t, p, dep) {
    var wrap = el('div', { cls: 'timeline-wrap' });
    var detail = el('div', { cls: 'detail' });
    var departBox = -1;
    if (dep) {
      p.boxes.forEach(function (b, k) {
        if (b.step === dep.step && (dep.session === null || dep.session === undefined || b.s === dep.session)) {
          if (departBox < 0 || b.lines.indexOf(dep.actual_line) >= 0) departBox = k;
        }
      });
    }
    function draw() {
      wrap.textContent = '';
      var points = [p.start, p.end];
      p.boxes.forEach(function (b) { points.push(b.t0); if (b.t1 !== null) points.push(b.t1); if (b.w !== null) points.push(b.w); });
      p.marks.forEach(function (m) { points.push(m[0]); });
      points = points.filter(function (v, i, a) { return a.indexOf(v) === i; }).sort(function (a, b) { return a - b; });
      var rank = {};
      points.forEach(function (v, i) { rank[v] = i; });
      var lo = points[0], hi = points[points.length - 1];
      function x(v) {
        if (scale === 'order') return points.length > 1 ? 100 * rank[v] / (points.length - 1) : 0;
        return hi > lo ? 100 * (v - lo) / (hi - lo) : 0;
      }
      var inner = el('div', { cls: 'timeline-inner' });
      var box = el('div', { cls: 'timeline' }, inner);
      if (p.marks.length) {
        var mt = el('div', { cls: 'track' });
        p.marks.forEach(function (m) { mt.appendChild(el('div', { cls: 'mark', title: m[1], style: 'left:' + x(m[0]) + '%' })); });
        inner.appendChild(el('div', { cls: 'lane marks' }, el('div', { cls: 'lane-label', text: 'spec' }), mt));
      }
      var lanes = t.sessions.map(function (name, si) {
        var track = el('div', { cls: 'track' });
        var lane = el('div', { cls: 'lane', 'data-session': name },
          el('div', { cls: 'lane-label', title: 'session ' + name + ' (click to fold)', text: name,
            onclick: function () { lane.classList.toggle('collapsed'); } }), track);
        lane.track = track;
        return lane;
      });
      var used = t.sessions.map(function () { return false; });
      p.boxes.forEach(function (b, k) {
        used[b.s] = true;
        var end = b.t1 === null ? p.end : b.t1;
        var left = x(b.t0), right = x(end);
        var cls = 'step-box';
        if (b.err.length) cls += ' error';
        if (b.cancel) cls += ' canceled';
        if (b.timeout) cls += ' timedout';
        if (b.t1 === null) cls += ' open-ended';
        if (b.notes.length) cls += ' notice';
        if (k === departBox) cls += ' departs';
        var tip = b.step + ': ' + b.sql + '\n' + (b.t1 === null ? 'did not complete' : us(end - b.t0));
        if (b.w !== null) tip += '\nwaited ' + us(end - b.w) + (b.by.length ? ' for ' + b.by.join(', ') : '');
        b.err.forEach(function (e) { tip += '\n' + e; });
        var node = el('div', {
          cls: cls, title: tip, 'data-step': b.step, 'data-session': t.sessions[b.s],
          'data-waited': b.w !== null ? 'true' : null,
          style: 'left:' + left + '%;width:calc(' + Math.max(0, right - left) + '% - 1px)'
        });
        if (b.w !== null) {
          var span = right - left;
          var wl = span > 0 ? 100 * (x(b.w) - left) / span : 0;
          node.appendChild(el('div', { cls: 'wait', style: 'left:' + wl + '%', title: 'waiting' + (b.by.length ? ' for ' + b.by.join(', ') : '') }));
        }
        node.appendChild(el('span', { cls: 'label', text: b.step + (b.w !== null && b.by.length ? ' ⟵ ' + b.by.join(',') : '') }));
        node.addEventListener('click', function () { show(b, node); });
        node.addEventListener('mouseenter', function () {
          b.by.forEach(function (n) { var i = t.sessions.indexOf(n); if (i >= 0) lanes[i].classList.add('blocker'); });
        });
        node.addEventListener('mouseleave', function () { lanes.forEach(function (l) { l.classList.remove('blocker'); }); });
        lanes[b.s].track.appendChild(node);
      });
      lanes.forEach(function (l, i) { if (!used[i]) l.classList.add('idle'); inner.appendChild(l); });
      var idleBtn = el('button', { text: 'fold idle lanes', onclick: function () {
        lanes.forEach(function (l, i) { if (!used[i]) l.classList.toggle('collapsed'); });
      } });
      var foldAll = el('button', { text: 'fold all lanes', onclick: function () {
        var fold = !lanes.every(function (l) { return l.classList.contains('collapsed'); });
        lanes.forEach(function (l) { l.classList.toggle('collapsed', fold); });
      } });
      wrap.appendChild(el('div', { cls: 'legend' }, idleBtn, ' ', foldAll, ' ',
        el('span', { text: t.sessions.length + ' sessions, ' + p.boxes.length + ' steps, ' + us(p.end - p.start) })));
      wrap.appendChild(box);
      if (p.marks.length) wrap.appendChild(el('pre', { cls: 'marks-text', text: p.marks.map(function (m) { return m[1]; }).join('\n') }));
      wrap.appendChild(detail);
    }
    function show(b, node) {
      wrap.querySelectorAll('.step-box.selected').forEach(function (n) { n.classList.remove('selected'); });
      node.classList.add('selected');
      detail.textContent = '';
      detail.classList.add('shown');
      var end = b.t1 === null ? null : b.t1;
      detail.appendChild(el('div', null, el('b', { text: 'step ' + b.step }), ' of session ' + t.sessions[b.s] + ': ' +
        (end === null ? 'did not complete' : us(end - b.t0)) +
        (b.w !== null ? ', waited ' + (end === null ? '' : us(end - b.w)) + (b.by.length ? ' for ' + b.by.join(', ') : '') : '') +
        (b.cancel ? ', canceled' : '') + (b.timeout ? ', timed out' : '')));
      detail.appendChild(el('pre', { text: b.sql }));
      if (b.err.length) detail.appendChild(el('pre', { cls: 'errors', text: b.err.join('\n') }));
      if (b.notes.length) detail.appendChild(el('pre', { cls: 'notices', text: b.notes.join('\n') }));
      if (b.rows.length) detail.appendChild(el('pre', { cls: 'rows', text: b.rows.join('\n') }));
    }
    draw();
    redraws.push(draw);
    return wrap;
  }

  // ---- expected and actual side by side ------------------------------------
  function sideBySide(s, t) {
    var exp = lines(t.expected), act = lines(t.actual);
    var stepLines = {};
    var dep = s.where;
    if (dep && dep.perm !== null && dep.perm !== undefined) {
      t.perms[dep.perm].boxes.forEach(function (b) {
        if (b.step === dep.step) b.lines.forEach(function (l) { stepLines[l] = true; });
      });
    }
    var tbl = el('table', null, el('tr', null, el('th', { cls: 'n' }),
      el('th', { text: 'expected: ' + (t.expected_file || '') }), el('th', { cls: 'n' }),
      el('th', { text: 'actual: ' + (s.result_file || '') })));
    var near = t.rows.map(function () { return false; });
    var first = -1;
    t.rows.forEach(function (r, i) {
      if (r[0] !== '=') {
        if (first < 0) first = i;
        for (var k = Math.max(0, i - 8); k <= Math.min(t.rows.length - 1, i + 8); k++) near[k] = true;
      }
    });
    function row(r, i) {
      var cls = { '=': 'eq', '-': 'del', '+': 'add', '~': 'chg' }[r[0]];
      if (i === first) cls += ' first-change';
      if (r[2] !== null && stepLines[r[2]]) cls += ' departing-step';
      return el('tr', { cls: cls, id: i === first ? 'first-change-' + s.index : null },
        el('td', { cls: 'n', text: r[1] === null ? '' : String(r[1] + 1) }),
        el('td', { cls: 'e', text: r[1] === null ? '' : exp[r[1]] }),
        el('td', { cls: 'n', text: r[2] === null ? '' : String(r[2] + 1) }),
        el('td', { cls: 'a', text: r[2] === null ? '' : act[r[2]] }));
    }
    var i = 0;
    while (i < t.rows.length) {
      if (near[i]) { tbl.appendChild(row(t.rows[i], i)); i++; continue; }
      var j = i;
      while (j < t.rows.length && !near[j]) j++;
      (function (from, to) {
        var fold = el('tr', { cls: 'fold' }, el('td', { colspan: '4', text: '… ' + (to - from) + ' equal lines (click to show)' }));
        fold.addEventListener('click', function () {
          var frag = document.createDocumentFragment();
          for (var k = from; k < to; k++) frag.appendChild(row(t.rows[k], k));
          fold.parentNode.replaceChild(frag, fold);
        });
        tbl.appendChild(fold);
      })(i, j);
      i = j;
    }
    var view = el('div', { cls: 'diff-view' }, tbl);
    // Aligned at the departure: scrolled to the first differing line.
    setTimeout(function () {
      var r = view.querySelector('tr.first-change');
      if (r) view.scrollTop = Math.max(0, r.offsetTop - 60);
    }, 0);
    return view;
  }

  // ---- specs ---------------------------------------------------------------
  function permDetails(s, t, k, open) {
    var p = t.perms[k];
    var departs = s.where && s.where.perm === k;
    var d = el('details', { cls: 'perm', 'data-perm': String(p.index + 1), 'data-departs': departs ? 'true' : 'false' },
      el('summary', null, el('b', { text: (data.kind === 'explore' ? 'class ' + (k + 1) : 'permutation ' + (p.index + 1)) + ': ' }),
        el('code', { title: p.steps.join(' '), text: p.steps.length > 40 ? p.steps.slice(0, 40).join(' ') + ' … (' + p.steps.length + ' steps)' : p.steps.join(' ') }), departs ? el('span', { cls: 'badge failed', text: s.where.step ? ' departs at step ' + s.where.step + ' ' : ' departs here ' }) : null));
    var body = el('div', { cls: 'perm-body' });
    d.appendChild(body);
    var drawn = false;
    function draw() { if (!drawn) { drawn = true; body.appendChild(timeline(t, p, departs ? s.where : null)); } }
    d.addEventListener('toggle', function () { if (d.open) draw(); });
    if (open || openAll) { d.open = true; draw(); }
    return d;
  }

  function specSection(s, i) {
    s.index = i;
    var d = el('details', { cls: 'spec', id: 'spec-' + i, 'data-name': s.name, 'data-status': s.status, 'data-passed': String(s.passed) },
      el('summary', null, el('h2', null, el('code', { text: s.name })), ' ', el('span', { cls: 'badge ' + s.status, text: s.status }),
        el('span', { cls: 'muted', text: '  ' + (s.file || '') + (data.kind === 'run' ? '  ' + s.duration_ms + ' ms, ' + s.permutations + (s.permutations === '1' ? ' permutation' : ' permutations') : '') })));
    var body = el('div', { cls: 'spec-body' });
    d.appendChild(body);
    var built = false;
    function build() {
      if (built) return;
      built = true;
      if (s.violations && s.violations.length) {
        var ul = el('ul', null);
        s.violations.forEach(function (v) { ul.appendChild(el('li', { text: v })); });
        body.appendChild(el('div', { cls: 'violations' }, el('b', { text: s.violations.length === 1 ? 'Invariant violated' : s.violations.length + ' invariants violated' }), ul));
      }
      if (s.detail && data.kind === 'run' && !(s.violations && s.violations.length && s.status === 'invariant-violated')) body.appendChild(el('pre', { cls: 'status-detail', text: s.detail }));
      if (s.where) {
        body.appendChild(el('div', { cls: 'where' },
          el('div', null, el('b', { text: 'Where: ' }), el('code', { text: (s.file || '') + ':' + s.where.line + (s.where.col > 1 ? ':' + s.where.col : '') }),
            s.where.place ? ' — ' + s.where.place : ''),
          el('pre', { text: s.where.message })));
      }
      var t = s.trace;
      if (data.kind === 'explore') {
        body.appendChild(el('p', { cls: 'muted', text: s.detail || '' }));
        var classes = data.classes.filter(function (c) { return c.trace_spec === i; });
        var tbl = el('table', { cls: 'summary classes' }, el('tr', null, el('th', { text: 'class' }), el('th', { text: 'interleavings' }),
          el('th', { text: 'outcome' }), el('th', { text: 'representative' })));
        classes.forEach(function (c) {
          tbl.appendChild(el('tr', { 'data-class': String(c.perm + 1), 'data-violation': String(c.violation), 'data-anomaly': String(c.anomaly) },
            el('td', { text: String(c.perm + 1) }), el('td', { text: c.count + (c.preemptions ? ' (' + c.preemptions + (c.preemptions === 1 ? ' preemption)' : ' preemptions)') : '') }),
            el('td', null, c.violation ? el('span', { cls: 'badge violation', text: 'violation' }) : null,
              c.anomaly ? el('span', { cls: 'badge anomaly', text: 'not serializable' }) : null, ' ' + c.outcome,
              c.verdict ? el('div', { cls: c.anomaly ? 'verdict bad' : 'verdict muted', text: c.verdict }) : null),
            el('td', null, el('code', { text: c.line }))));
        });
        body.appendChild(tbl);
        if (t) t.perms.forEach(function (p, k) {
          var c = classes[k];
          var pd = permDetails(s, t, k, c && (c.violation || c.anomaly) || (k === 0 && classes.length === 1));
          if (c) pd.querySelector('summary').appendChild(el('span', { cls: 'muted', text: '  ' + c.count + ' interleavings: ' + c.outcome }));
          body.appendChild(pd);
        });
        return;
      }
      if (t && t.rows.length) body.appendChild(sideBySide(s, t));
      else if (s.diff) body.appendChild(el('pre', { cls: 'diff', text: s.diff }));
      if (t) {
        t.perms.forEach(function (p, k) {
          var open = (s.where && s.where.perm === k) || (!s.where && k === 0 && t.perms.length <= 3);
          body.appendChild(permDetails(s, t, k, open));
        });
      } else if (!s.where) {
        body.appendChild(el('p', { cls: 'muted', text: 'no timeline recorded' }));
      }
    }
    d.addEventListener('toggle', function () { if (d.open) build(); });
    if (!s.passed || openAll || openSpec === 'spec-' + i) { d.open = true; build(); }
    return d;
  }

  data.specs.forEach(function (s, i) { app.appendChild(specSection(s, i)); });
  document.body.setAttribute('data-rendered', 'true');
  document.body.setAttribute('data-failing', String(failing.length));
})();
