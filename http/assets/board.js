'use strict';
// Innkeep room board. Plain JS, no dependencies. Everything it shows comes from the API:
// GET rooms, front-desk and tape (the tape chart), refreshed whenever the hotel's event
// stream says something changed. EventSource cannot send an Authorization header, so the stream is read with
// fetch() and parsed here.
(() => {
  const KEY_STORE = 'innkeep.board.key';
  const DEBOUNCE_MS = 150; // a burst of events is one refresh
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 8000;
  const STALL_MS = 45000; // the server sends a keep-alive every 15 s
  const PERIODIC_MS = 60000; // "today" turns over at the hotel's midnight without an event
  const RETRY_REFRESH_MS = 2000;

  const OCCUPANCY = { vacant: 'Vacant', occupied: 'Occupied' };
  const HOUSEKEEPING = {
    clean: 'Clean', dirty: 'Dirty', cleaning: 'Cleaning', inspected: 'Inspected',
    out_of_order: 'Out of order',
  };
  const STATUS = {
    pending_payment: 'unpaid', confirmed: 'confirmed', checked_in: 'checked in',
    checked_out: 'checked out', cancelled: 'cancelled', expired: 'expired', no_show: 'no-show',
  };

  /**
   * A Server-Sent Events parser following the WHATWG "event stream interpretation": fed
   * text in arbitrary chunks; lines end with CRLF, LF or CR; `:` lines are comments;
   * `data:` lines join with "\n"; `id:` sets the last event id when the event is
   * dispatched; `retry:` sets the reconnection delay; a blank line dispatches.
   */
  class SseParser {
    constructor(onEvent) {
      this.onEvent = onEvent;
      this.buf = '';
      this.started = false;
      this.skipLF = false;
      this.type = '';
      this.data = [];
      this.idBuf = null;
      this.lastId = null;
      this.retry = null;
    }

    push(text) {
      let buf = this.buf + text;
      let pos = 0;
      if (!this.started && buf.length > 0) {
        this.started = true;
        if (buf.charCodeAt(0) === 0xfeff) pos = 1;
      }
      if (this.skipLF && buf.length > pos) {
        this.skipLF = false;
        if (buf[pos] === '\n') pos += 1;
      }
      const eol = /[\r\n]/g;
      for (;;) {
        eol.lastIndex = pos;
        const m = eol.exec(buf);
        if (!m) break;
        const end = m.index;
        const line = buf.slice(pos, end);
        pos = end + 1;
        if (buf[end] === '\r') {
          if (pos < buf.length) {
            if (buf[pos] === '\n') pos += 1;
          } else {
            this.skipLF = true; // a LF may start the next chunk
          }
        }
        this.line(line);
      }
      this.buf = buf.slice(pos);
    }

    line(line) {
      if (line === '') {
        this.dispatch();
        return;
      }
      if (line[0] === ':') return; // a comment: the server's keep-alive
      const colon = line.indexOf(':');
      let field = line;
      let value = '';
      if (colon >= 0) {
        field = line.slice(0, colon);
        value = line.slice(colon + 1);
        if (value[0] === ' ') value = value.slice(1);
      }
      if (field === 'event') this.type = value;
      else if (field === 'data') this.data.push(value);
      else if (field === 'id') { if (!value.includes('\0')) this.idBuf = value; }
      else if (field === 'retry') { if (/^\d+$/.test(value)) this.retry = Number(value); }
    }

    dispatch() {
      if (this.idBuf !== null) this.lastId = this.idBuf;
      const type = this.type || 'message';
      const data = this.data;
      this.type = '';
      this.data = [];
      if (data.length === 0) return;
      this.onEvent({ type, data: data.join('\n'), id: this.lastId });
    }
  }

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const DAY_MS = 86400000;
  const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  // Civil dates as UTC midnights: their differences are whole days, whatever the zone.
  const dayNumber = (date) => {
    const [y, m, d] = date.split('-').map(Number);
    return Math.round(Date.UTC(y, m - 1, d) / DAY_MS);
  };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  const byRoomThenId = (a, b) => collator.compare(a.room, b.room) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

  const segments = location.pathname.split('/').filter(Boolean);
  let hotel = '';
  try { hotel = decodeURIComponent(segments[segments.length - 1] || ''); } catch (_) { hotel = ''; }
  const api = '/v1/hotels/' + encodeURIComponent(hotel);

  const store = {
    get() { try { return sessionStorage.getItem(KEY_STORE) || ''; } catch (_) { return ''; } },
    set(v) { try { sessionStorage.setItem(KEY_STORE, v); } catch (_) { /* private mode */ } },
    clear() { try { sessionStorage.removeItem(KEY_STORE); } catch (_) { /* private mode */ } },
  };

  let key = store.get();
  let generation = 0; // bumped to stop the stream loop and ignore stale answers
  let streamAbort = null;
  let lastEventId = null;
  let reconnectMin = BACKOFF_MIN_MS;
  let refreshTimer = null;
  let refreshing = false;
  let refreshAgain = false;
  let refreshes = 0;
  const flashRooms = new Set();

  class HttpError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || 'HTTP ' + status);
      this.status = status;
      this.code = problem && problem.code;
    }
  }

  async function httpError(res) {
    let problem = null;
    try { problem = await res.json(); } catch (_) { /* not JSON */ }
    return new HttpError(res.status, problem);
  }

  function headers(extra) {
    const h = Object.assign({ Accept: 'application/json' }, extra || {});
    if (key) h.Authorization = 'Bearer ' + key;
    return h;
  }

  async function getJson(path) {
    const res = await fetch(api + path, { headers: headers(), cache: 'no-store', credentials: 'omit' });
    if (!res.ok) throw await httpError(res);
    return res.json();
  }

  function setState(state, text) {
    document.body.dataset.state = state;
    $('status-text').textContent = text;
  }

  function showMessage(text) {
    const m = $('message');
    m.textContent = text || '';
    m.hidden = !text;
  }

  // Retrying cannot fix these; anything else (network, 429, 5xx) is retried.
  const permanent = (e) => e instanceof HttpError && [400, 401, 403, 404].includes(e.status);

  function fail(e) {
    if (e.status === 401) {
      needKey(e.message);
      return;
    }
    stop();
    let text = e.message;
    if (e.status === 403) text = 'This API key may not see the board (it needs the role admin or front_desk).';
    else if (e.status === 404) text = 'There is no hotel "' + hotel + '" that this key may see.';
    setState('error', 'Error');
    showMessage(text);
  }

  function stop() {
    generation += 1;
    if (streamAbort) streamAbort.abort();
    streamAbort = null;
    clearTimeout(refreshTimer);
    refreshTimer = null;
  }

  function needKey(detail) {
    stop();
    const refused = key !== '';
    key = '';
    store.clear();
    $('forget-key').hidden = true;
    $('key-form').hidden = false;
    const err = $('key-error');
    err.textContent = refused ? 'The key was refused: ' + detail : '';
    err.hidden = !refused;
    setState('auth', 'API key needed');
    $('api-key').focus();
  }

  // ---- refreshing the view --------------------------------------------------------

  function scheduleRefresh(delay) {
    if (refreshTimer !== null) return; // already coming: this event joins that refresh
    refreshTimer = setTimeout(runRefresh, delay === undefined ? DEBOUNCE_MS : delay);
  }

  async function runRefresh() {
    refreshTimer = null;
    if (refreshing) {
      refreshAgain = true; // answers may predate the event: ask again afterwards
      return;
    }
    refreshing = true;
    const gen = generation;
    try {
      const [rooms, day, tape] = await Promise.all([
        getJson('/rooms'), getJson('/front-desk'), getJson('/tape'),
      ]);
      if (gen !== generation) return;
      render(rooms, day);
      renderTape(tape, day.date);
      flashRooms.clear();
      refreshes += 1;
      document.body.dataset.refreshes = String(refreshes);
      document.body.dataset.loaded = 'true';
      $('updated').textContent = new Date().toLocaleTimeString();
      if (document.body.dataset.state !== 'error') showMessage('');
    } catch (e) {
      if (gen !== generation) return;
      if (permanent(e)) {
        fail(e);
      } else {
        showMessage('Could not load the board (' + e.message + '); retrying.');
        setTimeout(() => { if (gen === generation) scheduleRefresh(0); }, RETRY_REFRESH_MS);
      }
    } finally {
      refreshing = false;
      if (refreshAgain) {
        refreshAgain = false;
        scheduleRefresh();
      }
    }
  }

  function render(rooms, day) {
    document.body.dataset.date = day.date;
    $('date').textContent = day.date;
    const guests = new Map(day.in_house.map((r) => [r.id, r]));
    rooms.sort((a, b) => collator.compare(a.number, b.number));
    const counts = { occupied: 0, dirty: 0, out_of_order: 0 };
    const cells = rooms.map((room) => {
      const cell = el('div', 'room');
      cell.dataset.room = room.number;
      cell.dataset.roomType = room.room_type;
      cell.dataset.occupancy = room.occupancy;
      cell.dataset.housekeeping = room.housekeeping;
      if (room.reservation) cell.dataset.reservationId = room.reservation;
      const occ = OCCUPANCY[room.occupancy] || room.occupancy;
      const hk = HOUSEKEEPING[room.housekeeping] || room.housekeeping;
      cell.append(el('span', 'num', room.number), el('span', 'type', room.room_type),
        el('span', 'state', occ + ' · ' + hk));
      const guest = room.reservation && guests.get(room.reservation);
      if (guest) {
        cell.append(el('span', 'guest', guest.guest_name));
        if (guest.rate_plan) {
          const plan = el('span', 'plan', guest.rate_plan);
          plan.title = 'Rate plan';
          cell.append(plan);
        }
      }
      // An out-of-order range covering the board's date takes the room off sale today.
      const range = (room.out_of_order || []).find((r) => r.from <= day.date && day.date < r.to);
      if (range) {
        cell.dataset.blocked = 'true';
        cell.append(el('span', 'guest', 'Off sale until ' + range.to + (range.reason ? ' (' + range.reason + ')' : '')));
      }
      cell.title = 'Room ' + room.number + ' (' + room.room_type + '): ' + occ.toLowerCase() + ', ' + hk.toLowerCase();
      if (room.occupancy === 'occupied') counts.occupied += 1;
      if (room.housekeeping === 'dirty') counts.dirty += 1;
      if (room.housekeeping === 'out_of_order' || range) counts.out_of_order += 1;
      if (flashRooms.has(room.number)) cell.classList.add('flash');
      return cell;
    });
    if (cells.length === 0) cells.push(el('p', 'empty-note', 'This hotel has no rooms yet.'));
    $('rooms').replaceChildren(...cells);
    $('summary').textContent = rooms.length + ' rooms · ' + counts.occupied + ' occupied · ' +
      counts.dirty + ' dirty · ' + counts.out_of_order + ' out of order';
    renderList('arrivals', day.arrivals);
    renderList('departures', day.departures);
    renderList('in-house', day.in_house);
  }

  function renderList(id, items) {
    $(id + '-count').textContent = String(items.length);
    if (items.length === 0) {
      $(id).replaceChildren(el('li', 'empty', 'None'));
      return;
    }
    $(id).replaceChildren(...items.slice().sort(byRoomThenId).map((item) => {
      const li = el('li');
      li.dataset.reservationId = item.id;
      li.dataset.status = item.status;
      const badge = el('span', 'badge', STATUS[item.status] || item.status);
      badge.dataset.status = item.status;
      li.append(el('span', 'r', item.room), el('span', 'g', item.guest_name), badge,
        el('span', 's', item.arrival + ' → ' + item.departure + ' · ' + item.room_type));
      // The rate plan it was sold under (its price and cancellation terms).
      if (item.rate_plan) {
        li.dataset.ratePlan = item.rate_plan;
        const plan = el('span', 'plan', item.rate_plan);
        plan.title = 'Rate plan';
        li.append(plan);
      }
      li.title = item.id;
      return li;
    }));
  }

  // ---- the tape chart: rooms down the side, nights across ------------------------

  /** The tape chart: a row per room, a column per night of the window, a bar per stay. */
  function renderTape(tape, today) {
    const tapeEl = $('tape');
    const first = dayNumber(tape.from);
    const nights = tape.nights;
    tapeEl.style.setProperty('--nights', String(nights));
    tapeEl.dataset.from = tape.from;
    tapeEl.dataset.to = tape.to;
    tapeEl.dataset.nights = String(nights);
    const dates = [];
    for (let i = 0; i < nights; i += 1) {
      const t = new Date((first + i) * DAY_MS);
      dates.push({ iso: t.toISOString().slice(0, 10), weekday: t.getUTCDay(), day: t.getUTCDate() });
    }
    const column = (i) => String(i + 2); // column 1 is the room's label
    const dayClass = (base, d) => base + (d.weekday === 0 || d.weekday === 6 ? ' weekend' : '') +
      (d.iso === today ? ' today' : '');

    const head = el('div', 'tape-row tape-head');
    head.setAttribute('role', 'row');
    head.append(el('div', 'tape-label', 'Room'));
    dates.forEach((d, i) => {
      const cell = el('div', dayClass('tape-day', d));
      cell.setAttribute('role', 'columnheader');
      cell.dataset.date = d.iso;
      cell.style.gridColumn = column(i);
      cell.append(WEEKDAYS[d.weekday] + ' ', el('span', 'd', String(d.day)));
      cell.title = d.iso;
      head.append(cell);
    });

    const rooms = tape.rooms.slice().sort((a, b) => collator.compare(a.number, b.number));
    let bars = 0;
    const rows = rooms.map((room) => {
      const row = el('div', 'tape-row');
      row.setAttribute('role', 'row');
      row.dataset.room = room.number;
      row.dataset.roomType = room.room_type;
      const label = el('div', 'tape-label');
      label.setAttribute('role', 'rowheader');
      label.append(el('span', 'num', room.number), el('span', 'type', room.room_type));
      row.append(label);
      dates.forEach((d, i) => {
        const cell = el('div', dayClass('tape-cell', d));
        cell.style.gridColumn = column(i);
        row.append(cell);
      });
      // A range or stay clipped to the window: its first and last shown night as columns.
      const place = (fromDate, toDate, node) => {
        const start = Math.max(dayNumber(fromDate) - first, 0);
        const end = Math.min(dayNumber(toDate) - first, nights);
        if (end <= start) return false;
        node.style.gridColumn = column(start) + ' / ' + column(end);
        node.dataset.first = dates[start].iso;
        node.dataset.nights = String(end - start);
        if (dayNumber(fromDate) < first) node.classList.add('clipped-start');
        if (dayNumber(toDate) - first > nights) node.classList.add('clipped-end');
        return true;
      };
      for (const range of room.out_of_order) {
        const block = el('div', 'ooo-block', 'Out of order' + (range.reason ? ': ' + range.reason : ''));
        block.dataset.from = range.from;
        block.dataset.to = range.to;
        block.title = 'Room ' + room.number + ' out of order ' + range.from + ' → ' + range.to +
          (range.reason ? ' (' + range.reason + ')' : '');
        if (place(range.from, range.to, block)) row.append(block);
      }
      for (const r of room.reservations) {
        const bar = el('div', 'bar status-' + r.status);
        bar.dataset.reservationId = r.id;
        bar.dataset.status = r.status;
        bar.dataset.pinned = String(r.pinned === true);
        bar.dataset.arrival = r.arrival;
        bar.dataset.departure = r.departure;
        if (r.pinned) {
          bar.classList.add('pinned');
          const pin = el('span', 'pin', '⚑');
          pin.setAttribute('aria-label', 'pinned');
          bar.append(pin);
        }
        bar.append(el('span', 'g', r.guest_name));
        bar.title = r.guest_name + ' · ' + (STATUS[r.status] || r.status) + ' · ' + r.arrival + ' → ' +
          r.departure + (r.pinned ? ' · pinned to room ' + room.number : '') + ' · ' + r.id;
        // The nights this room holds: a guest moved here mid-stay slept the first ones elsewhere.
        if (place(r.held_from, r.held_to, bar)) {
          row.append(bar);
          bars += 1;
        }
      }
      if (flashRooms.has(room.number)) row.classList.add('flash');
      return row;
    });
    if (rows.length === 0) rows.push(el('p', 'empty-note', 'This hotel has no rooms yet.'));
    tapeEl.replaceChildren(head, ...rows);
    $('tape-summary').textContent = tape.from + ' → ' + tape.to + ' · ' + rooms.length + ' rooms · ' +
      bars + (bars === 1 ? ' stay' : ' stays');
  }

  // ---- views ----------------------------------------------------------------------

  function showView(view) {
    document.body.dataset.view = view;
    $('tab-board').setAttribute('aria-selected', String(view === 'board'));
    $('tab-tape').setAttribute('aria-selected', String(view === 'tape'));
  }

  const viewOfHash = () => (location.hash === '#tape' ? 'tape' : 'board');

  $('tab-board').addEventListener('click', () => {
    history.replaceState(null, '', location.pathname + location.search);
    showView('board');
  });
  $('tab-tape').addEventListener('click', () => {
    history.replaceState(null, '', location.pathname + location.search + '#tape');
    showView('tape');
  });
  window.addEventListener('hashchange', () => showView(viewOfHash()));
  showView(viewOfHash());

  // ---- the event stream -----------------------------------------------------------

  function onEvent(ev) {
    if (ev.id !== null) {
      lastEventId = ev.id;
      document.body.dataset.lastEventId = ev.id;
    }
    try {
      const data = JSON.parse(ev.data);
      if (data && typeof data.room === 'string') flashRooms.add(data.room);
    } catch (_) { /* not JSON: still a change */ }
    // Every event, resync included, means "what you show may be stale".
    scheduleRefresh();
  }

  async function streamLoop(gen) {
    let failures = 0;
    while (gen === generation) {
      const ctrl = new AbortController();
      streamAbort = ctrl;
      let stall = null;
      const kick = () => {
        clearTimeout(stall);
        stall = setTimeout(() => ctrl.abort(), STALL_MS);
      };
      try {
        const h = headers({ Accept: 'text/event-stream' });
        if (lastEventId !== null) h['Last-Event-ID'] = lastEventId;
        kick();
        const res = await fetch(api + '/events', {
          headers: h, cache: 'no-store', credentials: 'omit', signal: ctrl.signal,
        });
        if (!res.ok) throw await httpError(res);
        if (gen !== generation) return;
        failures = 0;
        setState('live', 'Live');
        // Subscribed now: anything after this arrives as an event, so one refresh now
        // covers whatever happened while we were away.
        scheduleRefresh(0);
        const parser = new SseParser(onEvent);
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          kick();
          const { value, done } = await reader.read();
          if (done) break;
          parser.push(decoder.decode(value, { stream: true }));
        }
        parser.push(decoder.decode());
        if (parser.retry !== null) reconnectMin = Math.max(100, parser.retry);
      } catch (e) {
        if (gen !== generation) return;
        if (permanent(e)) {
          fail(e);
          return;
        }
        failures += 1;
      } finally {
        clearTimeout(stall);
      }
      if (gen !== generation) return;
      // The stream ended (server shutdown, too slow, network): come back with the last id.
      setState('connecting', failures ? 'Reconnecting… (' + failures + ')' : 'Reconnecting…');
      const base = Math.min(BACKOFF_MAX_MS, reconnectMin * 2 ** Math.min(failures, 6));
      await sleep(base / 2 + Math.random() * base / 2);
    }
  }

  function start() {
    stop();
    const gen = generation;
    $('key-form').hidden = true;
    $('forget-key').hidden = key === '';
    showMessage('');
    setState('connecting', 'Connecting…');
    scheduleRefresh(0);
    streamLoop(gen);
  }

  $('hotel').textContent = hotel;
  document.title = hotel + ' · room board · Innkeep';

  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const value = $('api-key').value.trim();
    if (!value) return;
    key = value;
    store.set(value);
    $('api-key').value = '';
    $('key-error').hidden = true;
    start();
  });

  $('forget-key').addEventListener('click', () => {
    key = '';
    store.clear();
    needKey('');
  });

  setInterval(() => {
    if (document.body.dataset.state === 'live') scheduleRefresh(0);
  }, PERIODIC_MS);

  // For tests and for poking at it from the console.
  window.InnkeepBoard = Object.freeze({
    SseParser,
    refresh: () => scheduleRefresh(0),
    lastEventId: () => lastEventId,
  });

  start();
})();
