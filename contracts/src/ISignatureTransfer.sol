// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title The SignatureTransfer half of Uniswap's Permit2, as its specification defines it.
/// @notice Types and functions that x402's `upto` proxy calls; Permit2.sol implements them.
interface ISignatureTransfer {
    struct TokenPermissions {
        address token;
        uint256 amount;
    }

    struct PermitTransferFrom {
        TokenPermissions permitted;
        uint256 nonce;
        uint256 deadline;
    }

    struct SignatureTransferDetails {
        address to;
        uint256 requestedAmount;
    }

    function permitTransferFrom(
        PermitTransferFrom calldata permit,
        SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes calldata signature
    ) external;

    function permitWitnessTransferFrom(
        PermitTransferFrom calldata permit,
        SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes32 witness,
        string calldata witnessTypeString,
        bytes calldata signature
    ) external;

    function nonceBitmap(address owner, uint256 wordPosition) external view returns (uint256);

    function invalidateUnorderedNonces(uint256 wordPosition, uint256 mask) external;

    function DOMAIN_SEPARATOR() external view returns (bytes32);
}
