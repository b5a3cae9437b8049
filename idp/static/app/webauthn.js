// WebAuthn ceremonies for security keys and passkeys (D08). An ES module, loaded with
// <script type="module" src=...>: the CSP forbids inline scripts.
//
// A page opts in with a form:
//   <form data-webauthn="register|authenticate" data-options-url="..." data-verify-url="...">
//     <input type="hidden" name="csrf_token" ...>  (sent as X-CSRFToken with every request)
//     [<input name="name">]                         (registration: the key's name)
//     <button type="submit">...</button>
//   </form>
// plus an error box [data-webauthn-error] and a message [data-webauthn-unsupported] shown
// when the browser cannot do WebAuthn (a <noscript> message covers browsers without JS).
//
// The server sends options as JSON with binary fields in base64url; we turn those into
// ArrayBuffers, call navigator.credentials.create/get, turn the answer back into JSON and
// post it. The server answers {"redirect": url} or {"error": message}.

const MESSAGES = {
  NotAllowedError: 'The security key or passkey was not used, or it took too long. Try again.',
  InvalidStateError: 'That security key or passkey is already registered to your account.',
  SecurityError: 'Security keys cannot be used on this web address.',
  default: 'Something went wrong with your security key or passkey. Try again.'
}

export function base64urlToBuffer (text) {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/')
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4)
  const binary = atob(padded)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes.buffer
}

export function bufferToBase64url (buffer) {
  const bytes = new Uint8Array(buffer)
  let binary = ''
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i])
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

export function isSupported () {
  return Boolean(window.PublicKeyCredential && navigator.credentials &&
    typeof navigator.credentials.create === 'function')
}

function creationOptions (json) {
  const options = { ...json }
  options.challenge = base64urlToBuffer(json.challenge)
  options.user = { ...json.user, id: base64urlToBuffer(json.user.id) }
  options.excludeCredentials = (json.excludeCredentials || []).map(
    (c) => ({ ...c, id: base64urlToBuffer(c.id) }))
  // credProps tells the server whether the key made a discoverable credential (a passkey).
  options.extensions = { ...(json.extensions || {}), credProps: true }
  return options
}

function requestOptions (json) {
  const options = { ...json }
  options.challenge = base64urlToBuffer(json.challenge)
  options.allowCredentials = (json.allowCredentials || []).map(
    (c) => ({ ...c, id: base64urlToBuffer(c.id) }))
  return options
}

function credentialToJSON (credential) {
  const response = credential.response
  const json = {
    id: credential.id,
    rawId: bufferToBase64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || null,
    clientExtensionResults: credential.getClientExtensionResults
      ? credential.getClientExtensionResults()
      : {},
    response: { clientDataJSON: bufferToBase64url(response.clientDataJSON) }
  }
  if (response.attestationObject) {
    json.response.attestationObject = bufferToBase64url(response.attestationObject)
    json.response.transports = response.getTransports ? response.getTransports() : []
  } else {
    json.response.authenticatorData = bufferToBase64url(response.authenticatorData)
    json.response.signature = bufferToBase64url(response.signature)
    if (response.userHandle) json.response.userHandle = bufferToBase64url(response.userHandle)
  }
  return json
}

async function postJSON (url, token, body) {
  const response = await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRFToken': token },
    body: JSON.stringify(body)
  })
  if (response.redirected) {
    // The sign-in moved on or expired: the server sent us to the page that is due now.
    window.location.assign(response.url)
    return null
  }
  let data = null
  try {
    data = await response.json()
  } catch (error) {
    data = null
  }
  if (!response.ok && data && data.redirect) {
    // E05: the change needs a more recent sign-in; the server says where to confirm it.
    window.location.assign(data.redirect)
    return null
  }
  if (!response.ok || data === null) {
    throw new ServerError((data && data.error) || MESSAGES.default)
  }
  return data
}

class ServerError extends Error {}

function showError (message) {
  const box = document.querySelector('[data-webauthn-error]')
  if (!box) return
  box.querySelector('[data-webauthn-error-message]').textContent = message
  box.hidden = false
  box.focus()
}

async function run (form) {
  const token = form.querySelector('input[name="csrf_token"]').value
  const nameField = form.querySelector('input[name="name"]')
  const mode = form.dataset.webauthn
  const extra = nameField ? { name: nameField.value } : {}
  const options = await postJSON(form.dataset.optionsUrl, token, extra)
  if (options === null) return
  let credential
  if (mode === 'register') {
    credential = await navigator.credentials.create({ publicKey: creationOptions(options) })
  } else {
    credential = await navigator.credentials.get({ publicKey: requestOptions(options) })
  }
  const result = await postJSON(form.dataset.verifyUrl, token,
    { ...extra, credential: credentialToJSON(credential) })
  if (result && result.redirect) window.location.assign(result.redirect)
}

function enhance (form) {
  const button = form.querySelector('button[type="submit"], button:not([type])')
  if (!isSupported()) {
    const note = document.querySelector('[data-webauthn-unsupported]')
    if (note) note.hidden = false
    if (button) button.disabled = true
    return
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    if (button) button.disabled = true
    try {
      await run(form)
    } catch (error) {
      const message = error instanceof ServerError
        ? error.message
        : (MESSAGES[error && error.name] || MESSAGES.default)
      showError(message)
    } finally {
      if (button) button.disabled = false
    }
  })
}

document.querySelectorAll('form[data-webauthn]').forEach(enhance)
